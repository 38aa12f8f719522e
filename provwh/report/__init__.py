"""Reports from provenance records: the Markdown Workflow Card and a PDF report with plots.

``generate_report`` is the entry point (``Flowcept.generate_report`` calls it). Optional
packages (rich, matplotlib) are imported only when a report needs them.
"""

from provwh.report.service import generate_report

__all__ = ["generate_report"]
