"""The speed-up table condensed for a paper (``speedup_summary``: Markdown, CSV, LaTeX) and for a terminal (at
most 120 columns). The full table, with every estimate and interval end, is ``speedup``."""

from __future__ import annotations

import pandas as pd

from sfli_core import keys
from sfli_core.text import WIDTH

from .formats import cell

COLUMNS = ["study", "grid_point", "tau", "arms", "reached", "speedup_95", "ert_ratio_95", "error_ratio_95",
           "logrank_p_adj", "signed_rank_p_adj", "underpowered"]
# (column of the summary, terminal header, width); the first column takes what the others leave
_TERMINAL = [("grid_point", "grid point", 0), ("tau", "τ", 5), ("arms", "arms", 24), ("reached", "reached b t", 11),
             ("speedup_95", "speed-up, 95 %", 20), ("error_ratio_95", "error ratio, 95 %", 19),
             ("logrank_p_adj", "p adj", 8)]


def _with_interval(estimate: float, low: float, high: float) -> str:
    """'x [low, high]'; 'x' alone where there is no interval (too few pairs)."""
    if low != low or high != high or estimate in (float("inf"), float("-inf")):
        return cell(estimate)
    return f"{cell(estimate)} [{cell(low)}, {cell(high)}]"


def _grid_point(r) -> str:
    if r["variant"] != "base" and str(r["task"]) in str(r["variant"]):
        return str(r["variant"])
    return " ".join(str(p) for p in (r["task"], r["arch"], r["variant"]) if p != "base")


def summary_table(speed: pd.DataFrame) -> pd.DataFrame:
    """One row per row of the speed-up table: where, τ, which arms, runs that reached τ (baseline, treatment,
    of the pairs), the headline speed-up in words, the ERT and final-error ratios with their intervals, and
    both adjusted p-values."""
    rows = []
    for r in speed.to_dict("records"):
        rows.append({"study": r["study"], "grid_point": _grid_point(r), "tau": r["tau"],
                     "arms": f"{r['baseline']} vs {r['treatment']}",
                     "reached": f"{r['reached_base']}/{r['pairs']} {r['reached_treat']}/{r['pairs']}",
                     "speedup_95": r["speedup_statement"],
                     "ert_ratio_95": _with_interval(r["ert_ratio"], r["ert_ratio_low"], r["ert_ratio_high"]),
                     "error_ratio_95": _with_interval(r["error_ratio"], r["error_ratio_low"], r["error_ratio_high"]),
                     "logrank_p_adj": r["logrank_p_adj"], "signed_rank_p_adj": r["signed_rank_p_adj"],
                     "underpowered": r["underpowered"]})
    return pd.DataFrame(rows, columns=COLUMNS)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def compact(speed: pd.DataFrame) -> str:
    """The summary table as fixed-width text of at most 120 columns (long names are cut with …)."""
    if speed.empty:
        return "(no paired arms to compare)"
    table = summary_table(speed)
    rest = sum(w for *_, w in _TERMINAL[1:]) + 2 * (len(_TERMINAL) - 1)
    widths = [WIDTH - rest] + [w for *_, w in _TERMINAL[1:]]
    lines = ["  ".join(h.ljust(w) for (_, h, _), w in zip(_TERMINAL, widths)).rstrip()]
    for r in table.to_dict("records"):
        values = [keys.fmt_num(r[c]) if c == "tau" else cell(r[c]) for c, *_ in _TERMINAL]
        lines.append("  ".join(_fit(v, w).ljust(w) for v, w in zip(values, widths)).rstrip())
    return "\n".join(lines)
