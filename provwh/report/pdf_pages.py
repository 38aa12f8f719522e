"""The PDF's text pages: the card's headings, paragraphs and tables laid out page by page."""

from __future__ import annotations

import textwrap
from typing import Any

from provwh.report import fmt
from provwh.report.document import Block, Section, Table

PAGE = (11.0, 8.5)  # inches, landscape
MARGIN = 0.6


def plain(text: str) -> str:
    return str(text).replace("`", "")


class TextFlow:
    """Lays out headings, paragraphs, bullets and tables top to bottom over as many pages."""

    BODY, MONO, LINE, MONO_LINE = 8.5, 7.0, 0.17, 0.135

    def __init__(self, writer: PdfWriter) -> None:
        self.writer = writer
        self.fig = None
        self.y = 0.0

    def _page(self) -> None:
        self.close()
        self.fig = self.writer.figure()
        self.y = MARGIN

    def close(self) -> None:
        if self.fig is not None:
            self.writer.save(self.fig)
            self.fig = None

    def _room(self, height: float) -> None:
        if self.fig is None or self.y + height > PAGE[1] - MARGIN - 0.3:
            self._page()

    def _text(self, x: float, text: str, **kw: Any) -> None:
        self.fig.text(x / PAGE[0], 1 - self.y / PAGE[1], text, va="top", **kw)

    def heading(self, text: str, level: int) -> None:
        size = {1: 18, 2: 13, 3: 11}.get(level, 10)
        self._room(0.5 + 0.6)  # keep a heading with what follows it
        if self.y > MARGIN:
            self.y += 0.12
        self._text(MARGIN, plain(text), fontsize=size, fontweight="bold")
        self.y += size / 72 * 1.6

    def paragraph(self, text: str, indent: float = 0.0, bullet: bool = False) -> None:
        width = int((PAGE[0] - 2 * MARGIN - indent) / (self.BODY * 0.55 / 72))
        lines = textwrap.wrap(plain(text), width) or [""]
        for i, line in enumerate(lines):
            self._room(self.LINE)
            if bullet and i == 0:
                self._text(MARGIN + indent - 0.15, "•", fontsize=self.BODY)
            self._text(MARGIN + indent, line, fontsize=self.BODY)
            self.y += self.LINE
        self.y += 0.05

    def table(self, table: Table) -> None:
        from matplotlib.patches import Rectangle

        total_chars = int((PAGE[0] - 2 * MARGIN) / (self.MONO * 0.6 / 72)) - 2
        cells = [[plain(c) for c in row] for row in table.rows]
        headers = [plain(h) for h in table.headers]
        widths = [
            max([len(h)] + [len(r[i]) for r in cells if i < len(r)]) for i, h in enumerate(headers)
        ]
        widths = [min(w, 70) for w in widths]
        while sum(widths) + 2 * (len(widths) - 1) > total_chars:
            widest = max(range(len(widths)), key=lambda i: widths[i])
            widths[widest] -= 1

        def line(row: list[str]) -> str:
            parts = []
            for i, w in enumerate(widths):
                cell = fmt.short(row[i] if i < len(row) else "", w)
                parts.append(cell.rjust(w) if table.alignment(i) == "r" else cell.ljust(w))
            return "  ".join(parts).rstrip()

        header = line(headers)
        row_width = (sum(widths) + 2 * (len(widths) - 1)) * self.MONO * 0.6 / 72

        def draw_header() -> None:
            self._text(MARGIN, header, fontsize=self.MONO, family="monospace", fontweight="bold")
            self.y += self.MONO_LINE
            y = 1 - (self.y - 0.02) / PAGE[1]
            self.fig.add_artist(
                Rectangle(
                    (MARGIN / PAGE[0], y),
                    row_width / PAGE[0],
                    0.6 / 72 / PAGE[1],
                    transform=self.fig.transFigure,
                    color="#555555",
                )
            )
            self.y += 0.03

        self._room(self.MONO_LINE * 3)
        draw_header()
        for n, row in enumerate(cells):
            if self.y + self.MONO_LINE > PAGE[1] - MARGIN - 0.3:
                self._page()
                draw_header()
            if n % 2:
                self.fig.add_artist(
                    Rectangle(
                        (MARGIN / PAGE[0], 1 - (self.y + self.MONO_LINE - 0.02) / PAGE[1]),
                        row_width / PAGE[0],
                        self.MONO_LINE / PAGE[1],
                        transform=self.fig.transFigure,
                        color="#F0F0F0",
                        zorder=-1,
                    )
                )
            self._text(MARGIN, line(row), fontsize=self.MONO, family="monospace")
            self.y += self.MONO_LINE
        self.y += 0.12

    def blocks(self, blocks: list[Block]) -> None:
        for i, block in enumerate(blocks):
            following = blocks[i + 1] if i + 1 < len(blocks) else None
            if isinstance(block, str) and isinstance(following, Table):
                self._room(self.LINE * 2 + self.MONO_LINE * 4)  # a caption stays with its table
            if isinstance(block, Table):
                self.table(block)
            elif isinstance(block, list):
                for item in block:
                    self.paragraph(item, indent=0.25, bullet=True)
                self.y += 0.05
            else:
                self.paragraph(block)

    def section(self, section: Section, level: int) -> None:
        self.heading(section.title, level)
        self.blocks(section.blocks)
        for sub in section.subsections:
            self.section(sub, level + 1)


class PdfWriter:
    """Owns the PdfPages file; numbers pages in the footer."""

    def __init__(self, path: str, title: str) -> None:
        from matplotlib.backends.backend_pdf import PdfPages

        self.pdf = PdfPages(
            path,
            metadata={"Title": title, "Creator": "provwh", "CreationDate": None, "ModDate": None},
        )
        self.pages = 0
        self.title = title

    def figure(self) -> Any:
        from matplotlib.figure import Figure

        return Figure(figsize=PAGE)

    def save(self, fig: Any) -> None:
        self.pages += 1
        fig.text(
            0.5,
            0.025,
            f"{plain(self.title)} · page {self.pages}",
            ha="center",
            fontsize=7,
            color="#777777",
        )
        self.pdf.savefig(fig)

    def close(self) -> None:
        self.pdf.close()
