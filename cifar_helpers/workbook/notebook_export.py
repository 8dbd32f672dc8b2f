"""The executed notebooks as self-contained HTML pages, and the index.html beside the written report.

What a student uploads and a professor opens offline: each page is nbconvert's lab template with its
images embedded and none of the scripts it would fetch from the web (`notebook_page.html.j2`). Only
the notebooks of the run the report shows are exported: one that papermill ran with another
RESULTS_DIR (a smoke run's, in the same executed/ folder) is left out, and said so.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Mapping

from cifar_helpers.core.files import atomic_write_text
from cifar_helpers.models.specs import NOTEBOOKS, ON_REQUEST
from cifar_helpers.core.errors import WorkbookError
from cifar_helpers.core.paths import repo_path

PAGE_TEMPLATE = Path(__file__).with_name("notebook_page.html.j2")


def run_notebooks(executed_dir: Path, results_dir: Path) -> tuple[list[Path], list[str]]:
    """The executed notebooks (seed-<n>/ ones too) that belong to `results_dir`'s run, and a line on
    each one left out. A notebook without RESULTS_DIR (04) belongs to every run."""
    import nbformat

    from cifar_helpers.workbook.run_all import declared_parameters

    kept, left_out = [], []
    for path in sorted(executed_dir.glob("*.ipynb")) + sorted(executed_dir.glob("seed-*/*.ipynb")):
        try:
            declared = declared_parameters(path)
            injected = nbformat.read(path, as_version=4).metadata.get("papermill", {}).get("parameters", {})
        except (OSError, ValueError, WorkbookError) as err:
            left_out.append(f"{path}: it cannot be read ({' '.join(str(err).split())})")
            continue
        if "RESULTS_DIR" not in declared:
            kept.append(path)
            continue
        ran_with = repo_path(injected.get("RESULTS_DIR", declared["RESULTS_DIR"]), "results")
        # a further seed's notebook sits in seed-<n>/ and writes into RESULTS_DIR/seed-<n>/
        expected = results_dir if path.parent == executed_dir else results_dir / path.parent.name
        if ran_with == expected:
            kept.append(path)
        else:
            left_out.append(f"{path}: it ran with RESULTS_DIR={ran_with}, and the report shows {results_dir}")
    return kept, left_out


def notebook_html(path: Path, folder: Path | None = None) -> str:
    """`path` as one HTML page that needs nothing else but the files its links name, which it finds from
    `folder`, where the page goes (default: beside the notebook)."""
    import nbformat
    from nbconvert import HTMLExporter

    from cifar_helpers.workbook.notebook_files import rebase_markdown_cells

    notebook = nbformat.read(path, as_version=4)
    rebase_markdown_cells(notebook, path.parent, folder or path.parent)
    exporter = HTMLExporter(template_name="lab", template_file=str(PAGE_TEMPLATE), embed_images=True)
    body, _ = exporter.from_notebook_node(notebook)
    return body


def export_notebooks(executed_dir: Path, results_dir: Path, folder: Path,
                     read_from: Path | None = None) -> tuple[dict[str, str], list[str]]:
    """Write `folder/<name>.html` for each notebook of the run; return {name: page, relative to the
    report folder} and the lines on the notebooks left out. `read_from`: the folder the pages will be opened
    in, where `folder` is a staging one (their links are made to work from there)."""
    kept, left_out = run_notebooks(executed_dir, results_dir) if executed_dir.is_dir() else ([], [])
    pages = {}
    for path in kept:
        name = path.stem if path.parent == executed_dir else f"{path.parent.name}/{path.stem}"
        atomic_write_text(folder / f"{name}.html", notebook_html(path, ((read_from or folder) / name).parent))
        pages[name] = f"{folder.name}/{name}.html"
    return pages, left_out


def index_html(text: Mapping[str, str], lang: str, pages: Mapping[str, str], executed_label: str,
               report: str = "report.pdf") -> str:
    """The page that links the report and every notebook, in run order; a notebook of the workbook
    that is not among `pages` is named as missing."""
    names = [notebook for notebook, _ in NOTEBOOKS]
    ordered = [name for name in names if name in pages] + sorted(set(pages) - set(names),
                                                                 key=lambda n: (n.split("/")[-1], n))
    items = [f'<li><a href="{html.escape(pages[name])}">{html.escape(name)}</a></li>' for name in ordered]
    items += [f"<li>{html.escape(name)}: {html.escape(text['index_missing'].format(folder=executed_label))}</li>"
              for name in names if name not in pages and name not in ON_REQUEST]  # those run when asked only
    return "\n".join([
        "<!DOCTYPE html>",
        f'<html lang="{lang}">',
        '<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(text['index_title'])}</title>",
        "<style>body{font-family:sans-serif;max-width:42em;margin:2em auto;padding:0 1em;line-height:1.5}"
        "li{margin:.2em 0}</style></head>",
        "<body>",
        f"<h1>{html.escape(text['index_title'])}</h1>",
        f'<p><a href="{html.escape(report)}">{html.escape(text["index_report"])}</a></p>',
        f"<h2>{html.escape(text['index_notebooks'])}</h2>",
        "<ul>", *items, "</ul>",
        f"<p>{html.escape(text['index_source'])}</p>",
        "</body>",
        "</html>",
    ]) + "\n"

