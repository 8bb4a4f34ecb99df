"""`dse report`: merge result folders (`dse run` / `dse sweep`) into report.csv, a per-layer
side-by-side CSV, report.md and (with the `plot` extra) PNG plots.

merge.py finds and loads the result files, tables.py builds the rows and the markdown,
plots.py draws the figures, build.py writes everything. Nothing here is imported by `dse.cli`
until the `report` command runs.
"""
