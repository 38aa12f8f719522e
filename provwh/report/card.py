"""The Workflow Card: the report document as Markdown, and its rendering in a terminal."""

from __future__ import annotations

from provwh.report.document import Block, Document, Section, Table

REPORT_EXTRA = "pip install 'provwh[report]'"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|") or " "


def _table(table: Table) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in table.headers) + " |"]
    lines.append(
        "| "
        + " | ".join(
            "---:" if table.alignment(i) == "r" else "---" for i in range(len(table.headers))
        )
        + " |"
    )
    for row in table.rows:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


def _blocks(blocks: list[Block]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Table):
            lines += _table(block)
        elif isinstance(block, list):
            lines += [f"- {item}" for item in block]
        else:
            lines.append(block)
        lines.append("")
    return lines


def _section(section: Section, level: int) -> list[str]:
    lines = ["#" * level + " " + section.title, ""]
    lines += _blocks(section.blocks)
    for sub in section.subsections:
        lines += _section(sub, level + 1)
    return lines


def render(doc: Document) -> str:
    """Markdown text of the document (the same document gives the same text)."""
    lines = [f"# {doc.title}", ""] + _blocks(doc.intro)
    for section in doc.sections:
        lines += _section(section, 2)
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n"


def require_rich() -> None:
    """Fail before any work when the terminal rendering cannot happen."""
    try:
        import rich.console  # noqa: F401
        import rich.markdown  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"print_markdown=True needs the 'rich' package: {REPORT_EXTRA}", name="rich"
        ) from exc


def print_markdown(text: str) -> None:
    """Render Markdown in the terminal with rich (plain text when output is not a terminal)."""
    require_rich()
    from rich.console import Console
    from rich.markdown import Markdown

    Console().print(Markdown(text))
