"""The workbook as a whole: `make run` (papermill, the CPU estimate), `make report`, and the Jupyter set-up."""
