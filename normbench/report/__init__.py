"""Build the report of a run or a sweep: ``report.md``, a self-contained ``report.html`` and
``report.tex`` (the tables, for a paper).

    python -m normbench.report RESULTS_DIR [--out DIR]

sections.py turns a results tree into blocks, document.py holds them (one document model),
render.py writes each output from it; options.py says what a report can be told (the claims'
options passed whole); cli.py is the command line and the Hydra callback
(``normbench.report.ReportCallback``).
"""

from normbench.report.build import build_report, document
from normbench.report.cli import ReportCallback, main
from normbench.report.document import Block, Document
from normbench.report.options import Options

__all__ = [
    "Block",
    "Document",
    "Options",
    "ReportCallback",
    "build_report",
    "document",
    "main",
]
