"""Small HTML helpers for the server-rendered pages: escaping, the page frame, tables,
times, durations and status badges. Every value of the database goes through ``esc``."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any
from urllib.parse import quote, urlencode

from provwh.core.serialize import dumps


def esc(value: Any) -> str:
    """Text for HTML (None: empty)."""
    return "" if value is None else html.escape(str(value), quote=True)


def url(path: str, *parts: Any, **params: Any) -> str:
    """``path`` with ``parts`` as escaped path segments and the non-empty ``params``."""
    out = path.rstrip("/") + "".join("/" + quote(str(p), safe="") for p in parts)
    query = {k: v for k, v in params.items() if v not in (None, "")}
    return out + ("?" + urlencode(query) if query else "")


def link(href: str, text: Any) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def when(epoch: Any) -> str:
    """An epoch time as UTC: ``2023-11-14 22:13:20.125``."""
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool):
        return esc(epoch)
    try:
        t = dt.datetime.fromtimestamp(epoch, dt.UTC)
    except (OverflowError, OSError, ValueError):
        return esc(epoch)
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    ms = t.microsecond // 1000
    return text + (f".{ms:03d}" if ms else "")


def seconds(value: Any) -> str:
    """A duration, three significant digits: ``7.15 µs``, ``2.5 ms``, ``0.125 s``, ``12.5 s``,
    ``3 min 20 s``, ``2 h 5 min``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return ""
    if value < 0.001:
        return f"{value * 1e6:.3g} µs"
    if value < 0.01:
        return f"{value * 1e3:.3g} ms"
    if value < 60:
        return f"{value:.3g} s" if value < 10 else f"{value:.1f} s"
    if value < 3600:
        return f"{int(value // 60)} min {int(value % 60)} s"
    return f"{int(value // 3600)} h {int(value % 3600 // 60)} min"


def duration(rec: dict[str, Any]) -> str:
    t0, t1 = rec.get("started_at"), rec.get("ended_at")
    if isinstance(t0, (int, float)) and isinstance(t1, (int, float)):
        return seconds(t1 - t0)
    return ""


def status(value: Any) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    return f'<span class="status {esc(value)}">{esc(value)}</span>'


def status_bar(counts: dict[str, int]) -> str:
    """A bar of a status count, one colored part per status."""
    total = sum(counts.values()) or 1
    known = ("FINISHED", "ERROR", "ABORTED", "RUNNING")
    parts = []
    for name, n in sorted(counts.items(), key=lambda kv: str(kv[0])):
        cls = name if name in known else "other"
        parts.append(
            f'<span class="{cls}" style="width:{100 * n / total:.2f}%" title="{esc(name)}: {n}">'
            "</span>"
        )
    return f'<div class="bar">{"".join(parts)}</div>'


def counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{esc(k)} {v}" for k, v in sorted(counts.items(), key=lambda kv: str(kv[0])))


def value(v: Any) -> str:
    """A used / generated value: text as is, anything else as JSON."""
    if isinstance(v, str):
        return f"<code>{esc(v)}</code>"
    return f"<code>{esc(dumps(v).decode('utf-8', 'replace'))}</code>"


def table(headers: list[str], rows: list[list[str]], numeric: tuple[int, ...] = ()) -> str:
    """A table of cells already rendered as HTML; ``numeric``: right-aligned columns."""
    if not rows:
        return '<p class="muted">None.</p>'
    head = "".join(
        f'<th class="num">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fields(items: list[tuple[str, str]]) -> str:
    """A definition list of (label, HTML); empty values are left out."""
    return (
        '<dl class="fields">'
        + "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in items if v)
        + "</dl>"
    )


def card(label: str, n: Any) -> str:
    return (
        f'<div class="card"><div class="n">{esc(n)}</div>'
        f'<div class="label">{esc(label)}</div></div>'
    )


def page(title: str, body: str, engine: str = "", head: str = "") -> str:
    """The whole HTML document; ``head``: more of its head (the charts' scripts)."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} · provwh</title>
<link rel="stylesheet" href="/static/style.css">
{head}</head>
<body>
<header class="top">
<a class="brand" href="/">provwh</a>
<nav><a href="/">Overview</a><a href="/workflows">Workflows</a><a href="/campaigns">Campaigns</a>
<a href="/openapi.json">API</a></nav>
<span class="engine">{esc(engine)}</span>
</header>
<main>
{body}
</main>
</body>
</html>
"""
