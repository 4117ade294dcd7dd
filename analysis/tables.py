"""The report's tables, built from the run table of :func:`analysis.runs.load_runs` (writers: formats.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from sfli_core import keys, record

from .runs import arms_by_role
from .speedup import adjust, compare_arms

GROUP = ["study", "variant", "task", "arch"]


def speedup_table(runs: pd.DataFrame) -> pd.DataFrame:
    """docs/science.md §6 per study × grid point × task × architecture × target τ × (baseline arm, treatment
    arm). An arm's side is its initialisation's recorded role (``init_role``: SFLI is a treatment)."""
    rows = []
    for group, g in runs.groupby(GROUP, dropna=False, sort=True):
        treat_arms, base_arms = arms_by_role(g)
        first = g.iloc[0]
        rank_key = keys.initial(keys.rank_key(first['headline'], first['hidden_layers']))
        for tau in first["thresholds"]:
            for b in base_arms:
                for s in treat_arms:
                    row = dict(zip(GROUP, group))
                    row.update(tau=tau, metric=first["metric"], baseline=b, treatment=s)
                    cols = (keys.steps_to(tau), keys.seconds_to(tau), keys.final(keys.EVAL_REL_L2), rank_key)
                    row.update(compare_arms(_arm(g, b, cols + (keys.TIME_TRAIN,)),
                                            _arm(g, s, cols + (keys.TIME_TRAIN,)), *cols))
                    rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:  # one family per test, adjusted across the report's rows
        table.insert(table.columns.get_loc("logrank_p") + 1, "logrank_p_adj", adjust(table["logrank_p"]))
        # the final-error test does not depend on τ: each comparison enters its family once, not once per τ
        pair = GROUP + ["baseline", "treatment"]
        once = table.drop_duplicates(pair)[pair + ["signed_rank_p"]]
        once = once.assign(signed_rank_p_adj=adjust(once["signed_rank_p"].reset_index(drop=True)).to_numpy())
        adjusted = table[pair].merge(once.drop(columns="signed_rank_p"), on=pair, how="left")["signed_rank_p_adj"]
        table.insert(table.columns.get_loc("signed_rank_p") + 1, "signed_rank_p_adj", adjusted.to_numpy())
    return table


def _arm(g: pd.DataFrame, arm: str, columns) -> pd.DataFrame:
    """The arm's runs; a metric no run recorded (a target nobody reached) is an all-NaN (censored) column."""
    out = g[g["arm"] == arm].copy()
    for col in columns:
        out[col] = out[col].astype(float) if col in out else np.nan
    return out


def tuning_table(runs: pd.DataFrame, search: pd.DataFrame,
                 parent_tags: dict[str, dict[str, str]]) -> pd.DataFrame:
    """Per study, grid point and arm: the knobs a search tuned and the values it chose, what the search spent
    (trials, of which pruned by successive halving, training steps and seconds, summed over its trials), how
    many of its trials ran at once, and the chosen knobs at an edge of their range (``parent_tags``: study → the
    search parent run's tags), so that a reader sees whether every arm was tuned alike and within ranges that
    held its optimum."""
    rows = []
    for (study, variant, arm), g in runs.groupby(["study", "variant", "arm"], sort=True):
        mine = search[(search["study"] == study) & (search["arm"] == arm) & (search["variant"] == variant)] \
            if not search.empty else search
        chosen = g["chosen"].iloc[0]
        cell = arm if variant == "base" else f"{arm}/{variant}"
        prefix = f"{record.EDGE_PREFIX}{cell}/"
        tags = parent_tags.get(study, {})
        flags = [v for k, v in sorted(tags.items()) if k.startswith(prefix)]
        rows.append({"study": study, "variant": variant, "arm": arm, "init": g["init"].iloc[0],
                     "tuned": g["searched"].iloc[0] or "not tuned (fixed knobs)",
                     "chosen": ", ".join(f"{k}={_short(v)}" for k, v in sorted(chosen.items())) or "-",
                     "trials": len(mine), "pruned": int((mine["status"] == record.Status.STOPPED).sum()) if len(mine)
                     else 0, "search_steps": int(mine["steps"].sum()) if len(mine) else 0,
                     "search_seconds": round(float(mine["seconds"].sum()), 1) if len(mine) else 0.0,
                     "trials_at_once": tags.get(record.parallel_tag(cell), "-") if len(mine) else "-",
                     "edge": "; ".join(flags) or "-"})
    return pd.DataFrame(rows)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def layerwise_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per arm: median initial and final ε-rank (headline ε) per hidden layer, and whether it grows
    (is non-decreasing) from earlier to later layers."""
    rows = []
    for (study, variant, task, arch, arm), g in runs.groupby(GROUP + ["arm"], sort=True):
        first = g.iloc[0]
        for when, at in ((record.SPECTRA_INITIAL, keys.initial), (record.SPECTRA_FINAL, keys.final)):
            ranks = [float(np.nanmedian(g[c])) if (c := at(keys.rank_key(first['headline'], l))) in g
                     else math.nan for l in range(1, first["hidden_layers"] + 1)]
            rows.append({"study": study, "variant": variant, "task": task, "arch": arch, "arm": arm, "when": when,
                         "ranks_by_layer": " → ".join("-" if math.isnan(r) else f"{r:g}" for r in ranks),
                         "grows": bool(all(b >= a for a, b in zip(ranks, ranks[1:])))})
    return pd.DataFrame(rows)
