"""Condensation of recorded runs (docs/science.md §4): orientations against 2p at the end of a run and in the
condensation paper's *initial stage*, and how the counts depend on our clustering convention.

The initial stage [ours, after the paper's wording]: the last logging step at which the training loss is still
≥ ``STAGE_FRACTION`` × its value at step 0. Counts there are read from the per-step metrics
``condensation/layer<l>/orientations`` that runs with ``condensation.track`` record; weights there from their
``condensation_weights.json`` artifact (``steps``: the first condensation layer's u at every logging step).
"""

from __future__ import annotations

import pandas as pd
import torch

from sfli_core import keys, record
from sfli_core.activations import ACTIVATIONS
from sfli_core.condensation import analyse
from sfli_core.registry import RegistryError

from .runs import artifact_json, history

STAGE_FRACTION = 0.7
# the conventions the check varies (ours first): similarity threshold on D, and the smallest cluster that
# counts as an orientation (fraction of the kept neurons)
CONVENTIONS = [(0.9, 0.1), (0.8, 0.1), (0.95, 0.1), (0.9, 0.05), (0.9, 0.2)]


def stage_step(loss: pd.Series, fraction: float = STAGE_FRACTION) -> int:
    """The last logging step s with L(s) ≥ fraction · L(first step) before the loss first falls below it
    (``loss`` indexed by step)."""
    below = loss.index[loss < fraction * loss.iloc[0]]
    if len(below) == 0:
        return int(loss.index[-1])
    earlier = loss.index[loss.index < below[0]]
    return int(earlier[-1])


def with_stage(uri: str, runs: pd.DataFrame) -> pd.DataFrame:
    """``runs`` of small initialisation plus ``stage/step`` and ``stage/condensation/layer<l>/orientations``
    (and ``…/lines``) read from the tracked per-step counts; NaN for runs that did not track them."""
    small = runs[runs["init"] == "small_gaussian"].copy()
    for _, r in small.iterrows():
        loss = history(uri, r["run_id"], keys.TRAIN_LOSS)
        first = history(uri, r["run_id"], keys.condensation_key(1, keys.ORIENTATIONS))
        if len(first) < 2 or loss.empty:
            continue  # counted at the end only
        step = stage_step(loss)
        small.loc[small["run_id"] == r["run_id"], keys.stage(keys.STEP)] = step
        for layer in keys.condensation_layers(runs.columns):
            for count in (keys.ORIENTATIONS, keys.LINES):
                series = history(uri, r["run_id"], keys.condensation_key(layer, count))
                if step in series.index:
                    small.loc[small["run_id"] == r["run_id"], keys.stage(keys.condensation_key(layer, count))] = \
                        series[step]
    return small


def orientation_course(uri: str, runs: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per task of the small-initialisation arms that tracked condensation: the first layer's orientation
    count at every logging step, "median (max)" over seeds, one row per arm; how the count forms, and whether
    a count above 2p is a passing stage or where it settles."""
    out: dict[str, pd.DataFrame] = {}
    small = runs[runs["init"] == "small_gaussian"]
    for task, t in small.groupby("task", sort=True):
        rows = {}
        for arm, g in t.groupby("arm", sort=True):
            series = [history(uri, r, keys.condensation_key(1, keys.ORIENTATIONS)) for r in g["run_id"]]
            series = [x for x in series if len(x) > 1]
            if not series:
                continue
            table = pd.concat(series, axis=1)
            rows[arm] = {int(step): f"{v.median():g} ({v.max():g})" for step, v in table.iterrows()}
        if rows:
            out[task] = pd.DataFrame.from_dict(rows, orient="index").rename_axis("arm").reset_index()
    return out


def condensation_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per small-initialisation arm and hidden layer: condensed orientations and lines against 2p, at the end
    of the run and, where tracked, in the initial stage (median, max, seeds above 2p). Other initialisations
    are not in the condensed regime the 2p claim is about."""
    rows = []
    small = runs[runs["init"] == "small_gaussian"]
    for (study, variant, task, arm), g in small.groupby(["study", "variant", "task", "arm"], sort=True):
        activation = g.iloc[0]["activation"]
        for layer in keys.condensation_layers(runs.columns):
            col = keys.condensation_key(layer, keys.ORIENTATIONS)
            if g[col].isna().all():
                continue
            act, p = layer_multiplicity(activation, layer)
            row = {"study": study, "variant": variant, "task": task, "arm": arm, "layer": layer,
                   "activation": act, "p": p, "2p": 2 * p if p else None, "seeds": len(g),
                   "orientations_median": float(g[col].median()), "orientations_max": int(g[col].max()),
                   "lines_median": float(g[keys.condensation_key(layer, keys.LINES)].median()),
                   "above_2p": int((g[col] > 2 * p).sum()) if p else None}
            stage = keys.stage(col)
            if stage in g and g[stage].notna().any():
                row.update({"stage_step_median": float(g[keys.stage(keys.STEP)].median()),
                            "stage_orientations_median": float(g[stage].median()),
                            "stage_orientations_max": int(g[stage].max()),
                            "stage_above_2p": int((g[stage] > 2 * p).sum()) if p else None})
            rows.append(row)
    return pd.DataFrame(rows)


def first_above_2p(runs: pd.DataFrame) -> pd.DataFrame:
    """Per small-initialisation arm, the lowest seed whose first layer ends with more than 2p orientations:
    its heat maps are the evidence for the count."""
    col = keys.condensation_key(1, keys.ORIENTATIONS)
    if col not in runs:
        return runs.iloc[:0]
    picked = []
    for _, g in runs[runs["init"] == "small_gaussian"].sort_values("seed").groupby("arm"):
        _, p = layer_multiplicity(g.iloc[0]["activation"], 1)
        picked.append(g[g[col] > 2 * p].head(1) if p else g.iloc[:0])
    return pd.concat(picked) if picked else runs.iloc[:0]


def convention_check(uri: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Seeds above 2p in the first condensation layer, at the end and in the initial stage, under each
    clustering convention of ``CONVENTIONS`` (recounted from the recorded weights), per small-initialisation
    arm. Tells whether a count above 2p comes from the convention or from the time of analysis."""
    rows = []
    small = runs[runs["init"] == "small_gaussian"]
    for (study, variant, arm), g in small.groupby(["study", "variant", "arm"], sort=True):
        act, p = layer_multiplicity(g.iloc[0]["activation"], 1)
        if not p:
            continue
        weights = []
        for _, r in g.iterrows():
            w = artifact_json(uri, r["run_id"], record.WEIGHTS_FILE)
            if w is None or record.WEIGHTS_STEPS not in w:
                continue
            stage = stage_step(history(uri, r["run_id"], keys.TRAIN_LOSS))
            weights.append((w[record.WEIGHTS_END], w[record.WEIGHTS_STEPS].get(str(stage))))
        if not weights:
            continue
        for threshold, min_fraction in CONVENTIONS:
            counts = [(analyse(torch.tensor(end, dtype=torch.float64), threshold, min_fraction=min_fraction)
                       .orientations,
                       analyse(torch.tensor(at, dtype=torch.float64), threshold, min_fraction=min_fraction)
                       .orientations if at is not None else None) for end, at in weights]
            rows.append({"study": study, "variant": variant, "arm": arm, "activation": act, "2p": 2 * p,
                         "threshold": threshold, "min_fraction": min_fraction, "seeds": len(counts),
                         "end_max": max(c[0] for c in counts), "end_above_2p": sum(c[0] > 2 * p for c in counts),
                         "stage_max": max((c[1] for c in counts if c[1] is not None), default=None),
                         "stage_above_2p": sum(c[1] is not None and c[1] > 2 * p for c in counts)})
    return pd.DataFrame(rows)


def layer_multiplicity(activation: str | list[str], layer: int) -> tuple[str, int | None]:
    """The activation of hidden layer ``layer`` (from 1; a model's activation is one name or one per layer)
    and its multiplicity p."""
    act = activation if isinstance(activation, str) else activation[layer - 1]
    return act, multiplicity(act)


def multiplicity(activation: str) -> int | None:
    """p of a registered activation; None where it is unknown here (a user's module this process lacks)."""
    try:
        return ACTIVATIONS.get(activation).multiplicity
    except RegistryError:
        return None
