"""What the runs show: Table 1 and per-class tables, figures and their style, Fig 2 and Fig 3, a chapter's tables
and sentences."""
