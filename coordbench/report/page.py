"""HTML building blocks shared by the run and compare reports: escaping, tables, the page shell.

Everything that reaches the page from a run (model text, descs, file names, paths, config values)
goes through `esc`. The page loads nothing: inline CSS, images as data URIs, and a
Content-Security-Policy that forbids any other source, so a stray reference could not load either.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Sequence
from typing import Any

from coordbench.rundir.csvcells import visible_controls

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;\
max-width:1400px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.kv th{width:14em}.warn{color:#a40;font-weight:600}\
.badge{padding:1px 6px;border-radius:3px;background:#eee}
.partial{background:#fdd}.muted{color:#777}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:14px}
figure{margin:0;border:1px solid #ddd;padding:6px;border-radius:4px;background:#fafafa}
figure img{display:block;max-width:100%;height:auto;image-rendering:auto}
.missing{background:#eee;border:1px dashed #999;padding:4px;color:#555;word-break:break-all;\
font-size:12px}
pre{white-space:pre-wrap;word-break:break-all;background:#f6f6f6;padding:6px;max-height:18em;overflow:auto;font-size:12px}
.tp{color:#1a8a2e}.fp{color:#d62728}.fn{color:#e67e00}.ign{color:#888}
img.plot{max-width:100%;height:auto}
"""


MAX_TEXT = 20_000  # characters of any one text value on the page


def esc(value: Any) -> str:
    """HTML-escape any value (quotes too, so it is safe in attributes).

    `://` is written as `:&#47;&#47;` (renders the same) so that the page holds no literal URL,
    and a grep for `http://` can prove it self-contained even when model text quotes one.
    Text longer than MAX_TEXT (a 50 MB class name) is cut, saying how long it was.
    """
    text = "" if value is None else visible_controls(str(value))
    if len(text) > MAX_TEXT:
        text = f"{text[:MAX_TEXT]}... [truncated, {len(text):,} characters]"
    return html.escape(text, quote=True).replace("://", ":&#47;&#47;")


def fmt(value: Any, digits: int = 4) -> str:
    """A number for a table cell: floats to `digits` places, None/NaN as '-'."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def img_tag(
    data: bytes, mime: str, alt: str, css_class: str = "", size: tuple[int, int] | None = None
) -> str:
    attrs = f' class="{esc(css_class)}"' if css_class else ""
    if size:
        attrs += f' width="{int(size[0])}" height="{int(size[1])}"'
    return f'<img src="{data_uri(data, mime)}" alt="{esc(alt)}"{attrs}>'


def table(columns: Sequence[Any], rows: Iterable[Sequence[Any]], css_class: str = "") -> str:
    """A table with escaped headers and cells; numbers right-aligned and formatted."""
    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{esc(fmt(v))}</td>' if is_num(v) else f"<td>{esc(fmt(v))}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    cls = f' class="{esc(css_class)}"' if css_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def kv_table(pairs: Iterable[tuple[str, Any]]) -> str:
    """Two-column key/value table (header block of the run report)."""
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in pairs)
    return f'<table class="kv"><tbody>{rows}</tbody></table>'


def page(title: str, body: str) -> str:
    """The full document: charset, CSP, inline CSS, escaped title, the given (already safe) body."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
