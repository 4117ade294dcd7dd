"""Writers of a report table: Markdown, CSV, LaTeX (escaped, ASCII only, compiles with plain LaTeX) and an
HTML fragment. Numbers are shown with 3 significant digits, NaN as a dash, inf as ∞."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_UNICODE = {"×": r"$\times$", "≥": r"$\geq$", "≤": r"$\leq$", "→": r"$\to$", "ε": r"$\varepsilon$",
                  "τ": r"$\tau$", "κ": r"$\kappa$", "ω": r"$\omega$", "∞": r"$\infty$", "—": "--", "–": "--",
                  "…": r"\ldots{}", "½": "1/2", "²": "$^2$"}


def cell(value) -> str:
    """A value as the tables show it."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        return "∞" if math.isinf(value) else f"{value:.3g}"
    return "—" if value is None else str(value)


def markdown(table: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table."""
    if table.empty:
        return "_(no rows)_"
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v).replace("|", "\\|") for v in row) + " |"
              for row in table.itertuples(index=False)]
    return "\n".join(lines)


def latex_escape(text: str) -> str:
    """LaTeX source for ``text``: special characters escaped, the few non-ASCII symbols the tables use as
    math, anything else non-ASCII replaced by '?', so that the result compiles without extra packages."""
    out = []
    for ch in text:
        if ch in _LATEX_SPECIAL:
            out.append(_LATEX_SPECIAL[ch])
        elif ch in _LATEX_UNICODE:
            out.append(_LATEX_UNICODE[ch])
        else:
            out.append(ch if ord(ch) < 128 else "?")
    return "".join(out)


def latex(table: pd.DataFrame) -> str:
    """A ``tabular`` (left-aligned text, right-aligned numbers) with escaped header and cells."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(table[c]) else "l" for c in table.columns)
    rows = [" & ".join(latex_escape(str(c)) for c in table.columns) + r" \\ \hline"]
    rows += [" & ".join(latex_escape(cell(v)) for v in row) + r" \\" for row in table.itertuples(index=False)]
    return "\n".join([rf"\begin{{tabular}}{{{align}}}", r"\hline", *rows, r"\hline", r"\end{tabular}", ""])


def html_table(table: pd.DataFrame) -> str:
    if table.empty:
        return "<p><em>(no rows)</em></p>"
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>"
                   for row in table.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def write(table: pd.DataFrame, out: Path, name: str, tex: bool = True) -> list[Path]:
    """``name``.md, .csv (full precision) and, with ``tex``, .tex in ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.md", out / f"{name}.csv"]
    paths[0].write_text(markdown(table) + "\n")
    table.to_csv(paths[1], index=False)
    if tex:
        paths.append(out / f"{name}.tex")
        paths[2].write_text(latex(table))
    return paths
