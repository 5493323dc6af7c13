"""HTML building blocks of the report: the page, escaping, tables, images, badges.

A string.Template and a few helpers, not a template engine: the page is a handful of
sections of tables and images, and every value from data goes through `esc` (markupsafe's
escape; HTML built here is a markupsafe `Markup`, which it leaves as it is).
"""

from __future__ import annotations

import string
from collections.abc import Iterable
from typing import Any

import numpy as np
from markupsafe import Markup
from markupsafe import escape as esc  # for HTML text and attributes, quotes included

NOT_RECORDED = "not recorded"

_PAGE = string.Template("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<title>$title</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; } h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .5em 0 1em; } td, th { border: 1px solid #ddd; padding: 2px 8px; }
th { background: #f4f4f4; text-align: left; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f6f6f6; padding: 1px 4px; word-break: break-all; }
.flag { color: #fff; background: #d62728; padding: 0 6px; border-radius: 3px; }
.ok { color: #2a7a2a; } .muted { color: #777; }
.plots { display: flex; flex-wrap: wrap; gap: 6px; } .plots img { border: 1px solid #eee; }
</style></head>
<body>
$body
</body></html>
""")


def fmt(value: Any) -> str:
    """Numbers compactly (4 significant digits for floats), anything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float | np.floating):
        return f"{value:.4g}"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    return str(value)


def table(headers: list[str], rows: Iterable[list[Any]]) -> str:
    """An HTML table; every cell escaped unless Markup, numbers right-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = "".join(f'<td class="n">{esc(fmt(c))}</td>' if isinstance(c, int | float | np.number)
                        and not isinstance(c, bool) else f"<td>{esc(c)}</td>" for c in row)
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def img(uri: str, alt: str) -> str:
    return f'<img src="{esc(uri)}" alt="{esc(alt)}">'


def flag(drifted: bool | None) -> Markup:
    if drifted is None:
        return Markup('<span class="muted">-</span>')
    return Markup('<span class="flag">drift</span>' if drifted else '<span class="ok">ok</span>')


def more(total: int, shown: int, what: str) -> str:
    """A note for lists cut to `shown` entries."""
    return f"<p class='muted'>... and {total - shown:,} more {esc(what)}.</p>" if total > shown else ""


def not_recorded(what: str) -> str:
    return f'<p class="muted">{esc(what)}: {NOT_RECORDED}.</p>'


def page(title: str, body: str) -> str:
    """The whole document: `title` is escaped here, `body` is HTML built with these helpers."""
    return _PAGE.substitute(title=esc(title), body=body)
