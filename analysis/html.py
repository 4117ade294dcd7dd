"""One self-contained HTML page per report: text, tables and every figure embedded (PNG as data URIs), so
that the file can be mailed, attached to an MLflow run, or opened from disk with nothing beside it."""

from __future__ import annotations

import base64
import html
from pathlib import Path

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5em 0 1.5em; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; position: sticky; top: 0; }
td:nth-child(-n+4) { text-align: left; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 640px; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
dt { font-family: monospace; font-weight: bold; } dd { margin: 0 0 0.4em 1.5em; font-size: 13px; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
"""


def image(path: Path) -> str:
    """A figure as an <img> with its PNG inlined, captioned with its file name."""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(path.name)}</figcaption></figure>")


def page(title: str, sections: list[tuple[str, str]]) -> str:
    """The page; ``sections`` are (heading, HTML body) pairs, bodies already escaped by their builders."""
    body = "\n".join(f"<h2>{html.escape(h)}</h2>\n{b}" for h, b in sections)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head>\n<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def preformatted(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>"


def glossary(columns: dict[str, str]) -> str:
    return "<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in columns.items()) + "</dl>"
