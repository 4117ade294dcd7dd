"""The source papers' claims judged against recorded runs: one test per kind of claim (:data:`TESTS`), each
returning a :class:`Judgement` with the statistic it rests on; which claim a test judges on which studies,
tasks and architectures is data (analysis/catalogue.yaml). Read-only, like the rest of :mod:`analysis`.

Verdicts (:class:`Verdict`): ``reproduced`` (every cell tested supports the claim at 95 %), ``partly`` (some
cells do, or the claim holds for one construction and not another), ``not reproduced`` (no cell does, or the
data contradict it), ``inconclusive`` (tested, and the data decide neither way at 95 %), ``not tested here``
(no recorded study covers it). A cell "supports" a speed or accuracy claim when its 95 % interval excludes 1
in the claimed direction and its Benjamini–Hochberg adjusted p (across the rows of that study's report) is
below 0.05. The treatment is every arm whose initialisation's recorded role is ``treatment``
(:func:`analysis.runs.treated`: SFLI, or a user's scheme registered as one), as in the speed-up tables.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import pandas as pd
from scipy.stats import binomtest, mannwhitneyu, wilcoxon

from sfli_core import keys
from sfli_core.staircase import staircase_stats

from .catalogue import ClaimSpec
from .condensation import condensation_table, convention_check, with_stage
from .report import curves_of
from .runs import arms_by_role, treated

ALPHA = 0.05


class Verdict(StrEnum):
    REPRODUCED = "reproduced"
    PARTLY = "partly"
    NOT_REPRODUCED = "not reproduced"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTED = "not tested here"


@dataclass
class Judgement:
    claim: str
    source: str
    verdict: Verdict
    evidence: str  # where to look: a section, table or figure of docs/results.md
    statistic: str  # the numbers the verdict rests on
    budget: str


@dataclass
class Evidence:
    """What the tests read: the evaluation runs and the speed-up rows of the page's studies, and the store."""
    uri: str
    runs: pd.DataFrame
    speed: pd.DataFrame

    def runs_for(self, spec: ClaimSpec) -> pd.DataFrame:
        return _select(self.runs, spec)

    def speed_for(self, spec: ClaimSpec) -> pd.DataFrame:
        return _select(self.speed, spec)


def _select(table: pd.DataFrame, spec: ClaimSpec) -> pd.DataFrame:
    """The rows of ``table`` (runs or speed-up rows) in the claim's studies, tasks and architectures."""
    if table.empty:
        return table
    keep = pd.Series(True, index=table.index)
    for column, wanted in (("study", spec.studies), ("task", spec.tasks), ("arch", spec.archs)):
        if wanted is not None:
            keep &= table[column].isin(wanted)
    return table[keep]


def _untested(spec: ClaimSpec, why: str) -> Judgement:
    return Judgement(spec.claim, spec.source, Verdict.NOT_TESTED, "—", why, "—")


def paired_initial_ranks(runs: pd.DataFrame) -> pd.DataFrame:
    """Every (study, grid point, baseline arm, treatment arm, seed): the last hidden layer's initial ε-rank
    (headline ε) of both runs."""
    rows = []
    for (study, variant), g in runs.groupby(["study", "variant"]):
        layer, eps = int(g["hidden_layers"].iloc[0]), float(g["headline"].iloc[0])
        col = keys.initial(keys.rank_key(eps, layer))
        mask = treated(g)
        for base_arm, base in g[~mask].groupby("arm"):
            for treat_arm, treat in g[mask].groupby("arm"):
                m = base[["seed", col]].merge(treat[["seed", col]], on="seed", suffixes=("_b", "_t"))
                rows += [{"study": study, "variant": variant, "task": g["task"].iloc[0], "arch": g["arch"].iloc[0],
                          "baseline": base_arm, "treatment": treat_arm, "seed": s, "base": b, "treat": t}
                         for s, b, t in zip(m["seed"], m[f"{col}_b"], m[f"{col}_t"])]
    return pd.DataFrame(rows)


def initial_rank(runs: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    pairs = paired_initial_ranks(runs).dropna() if not runs.empty else pd.DataFrame()
    if pairs.empty:
        return _untested(spec, "no paired runs")
    higher = int((pairs["treat"] > pairs["base"]).sum())
    n = len(pairs)
    cells = pairs.groupby(["study", "variant", "baseline", "treatment"])
    every = int(cells.apply(lambda c: bool((c["treat"] > c["base"]).all())).sum())
    test = binomtest(higher, n, 0.5, alternative="greater")
    verdict = (Verdict.REPRODUCED if every == cells.ngroups else Verdict.PARTLY if higher
               else Verdict.NOT_REPRODUCED)
    statistic = (f"treatment higher in {higher} of {n} seed pairs; in every pair of {every} of {cells.ngroups} "
                 f"cells; median {pairs['treat'].median():g} vs {pairs['base'].median():g}; sign test p = "
                 f"{test.pvalue:.1e}")
    return Judgement(spec.claim, spec.source, verdict, "§ per study, column initial_rank; layerwise tables",
                     statistic, "at initialisation (step 0)")


def _direction(row) -> float:
    """> 1 when SFLI is the faster arm, < 1 when the baseline is: the end of the speed-up interval beyond 1 when
    the interval excludes 1, else the ERT ratio (∞ when only SFLI reached τ; the medians' interval is often
    [0, ∞] when few runs reached τ)."""
    low, high = row["speedup_low"], row["speedup_high"]
    if low > 1:
        return low
    if high < 1:
        return high
    return row.get("ert_ratio", float("nan"))


def _faster(row) -> bool:
    return bool(_direction(row) > 1 and row["logrank_p_adj"] < ALPHA)


def _slower(row) -> bool:
    return bool(_direction(row) < 1 and row["logrank_p_adj"] < ALPHA)


def _more_accurate(row) -> bool:
    return bool(row["error_ratio_low"] > 1 and row["signed_rank_p_adj"] < ALPHA)


def _less_accurate(row) -> bool:
    return bool(row["error_ratio_high"] < 1 and row["signed_rank_p_adj"] < ALPHA)


def _budget(rows: pd.DataFrame) -> str:
    steps = sorted({int(b) for b in rows["budget"]})
    pairs = sorted({int(p) for p in rows["pairs"]})
    return f"{'/'.join(map(str, steps))} steps, {'/'.join(map(str, pairs))} seed pairs per cell"


def _grade(good: int, total: int) -> Verdict:
    if total == 0:
        return Verdict.NOT_TESTED
    if good == total:
        return Verdict.REPRODUCED
    if good == 0:
        return Verdict.NOT_REPRODUCED
    return Verdict.PARTLY


def _where(rows: pd.DataFrame, test) -> str:
    """The comparisons that pass ``test``, as 'task arch: treatment vs baseline' (which construction and which
    baseline a result holds for)."""
    hits = rows[rows.apply(test, axis=1)]
    return ", ".join(sorted({f"{r['task']} {r['arch']}: {r['treatment']} vs {r['baseline']}"
                             for _, r in hits.iterrows()})) or "none"


def _tables(rows: pd.DataFrame) -> str:
    return f"speed-up tables of {', '.join(sorted(rows['study'].unique()))}"


def speed(rows: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Steps to each grid point's first (easiest) target, every treatment against every baseline; a comparison
    where neither arm reached it carries no information about speed and is left out (and counted)."""
    if rows.empty:
        return _untested(spec, "no recorded cell")
    rows = rows[rows["tau"] == rows.groupby(["study", "variant"])["tau"].transform("max")]
    silent = rows[(rows["reached_base"] + rows["reached_treat"]) == 0]
    rows = rows.drop(silent.index)
    if rows.empty:
        return Judgement(spec.claim, spec.source, Verdict.NOT_TESTED, _tables(silent),
                         f"no arm reached the target in any of {len(silent)} comparisons", _budget(silent))
    good, bad = int(rows.apply(_faster, axis=1).sum()), int(rows.apply(_slower, axis=1).sum())
    statistic = (f"faster (log-rank p_adj < 0.05, speed-up interval or ERT ratio > 1) in {good} of {len(rows)} "
                 f"comparisons ({_where(rows, _faster)}); slower in {bad} ({_where(rows, _slower)}); "
                 f"speed-ups {', '.join(sorted(set(rows['speedup_statement'].astype(str))))}"
                 + (f"; {len(silent)} more where neither arm reached τ (no information)" if len(silent) else ""))
    return Judgement(spec.claim, spec.source, _grade(good, len(rows)), _tables(rows), statistic, _budget(rows))


def accuracy(rows: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Final relative L2 error, every treatment against every baseline (one row per pair of arms and grid
    point)."""
    if rows.empty:
        return _untested(spec, "no recorded cell")
    rows = rows.drop_duplicates(["study", "variant", "baseline", "treatment"])
    good, bad = int(rows.apply(_more_accurate, axis=1).sum()), int(rows.apply(_less_accurate, axis=1).sum())
    ratios = rows["error_ratio"]
    statistic = (f"lower final error at 95 % (bootstrap interval > 1, signed-rank p_adj < 0.05) in {good} of "
                 f"{len(rows)} comparisons ({_where(rows, _more_accurate)}); higher in {bad} "
                 f"({_where(rows, _less_accurate)}); error ratios {ratios.min():.3g}–{ratios.max():.3g}")
    return Judgement(spec.claim, spec.source, _grade(good, len(rows)), _tables(rows), statistic, _budget(rows))


def per_run_staircase(curves: dict[str, list[pd.DataFrame]]) -> pd.DataFrame:
    """One row per run: arm and its staircase statistics (docs/science.md §2)."""
    rows = []
    for arm, frames in curves.items():
        for frame in frames:
            f = frame.dropna()
            if len(f) >= 3 and (f["loss"] > 0).all():
                s = staircase_stats(f.index.to_numpy(), f["loss"].to_numpy(), f["rank"].to_numpy(),
                                    until=frame.attrs.get("reached"))
                rows.append({"arm": arm, **vars(s)})
    return pd.DataFrame(rows)


def staircase(stats: pd.DataFrame, treatments: list[str], budget: int, spec: ClaimSpec) -> Judgement:
    """Baselines: loss drops go with ε-rank rises (Spearman > 0 across runs, one-sample Wilcoxon); the
    treatment arms (``treatments``) take fewer rank steps and plateaus than the baselines (Mann–Whitney,
    one-sided)."""
    if stats.empty:
        return _untested(spec, "no staircase study")
    mine = stats["arm"].isin(treatments)
    base, treat = stats[~mine], stats[mine]
    rho = base["spearman"].dropna()
    p_rho = wilcoxon(rho, alternative="greater").pvalue if len(rho) >= 6 else float("nan")
    p_steps = mannwhitneyu(treat["rank_steps"], base["rank_steps"], alternative="less").pvalue
    p_plat = mannwhitneyu(treat["plateaus"], base["plateaus"], alternative="less").pvalue
    ok = [p_rho < ALPHA, p_steps < ALPHA, p_plat < ALPHA]
    verdict = Verdict.REPRODUCED if all(ok) else (Verdict.PARTLY if any(ok) else Verdict.NOT_REPRODUCED)
    statistic = (f"baselines ({len(base)} runs): Spearman(−Δlog L, Δ rank) median {rho.median():.2f}, > 0 with "
                 f"one-sided Wilcoxon p = {p_rho:.1e}; rank steps median {base['rank_steps'].median():g} (baselines)"
                 f" vs {treat['rank_steps'].median():g} (treatment), Mann–Whitney p = {p_steps:.1e}; plateaus (mean) "
                 f"{base['plateaus'].mean():.2g} vs {treat['plateaus'].mean():.2g}, p = {p_plat:.1e}")
    return Judgement(spec.claim, spec.source, verdict, "§ staircase: statistics, segment figure",
                     statistic, f"{budget} steps, {len(treat)} treatment and {len(base)} baseline runs")


def depth(runs: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Final ε-rank non-decreasing from the first to the last hidden layer, per run."""
    rows = []
    for (_, r), is_treated in zip(runs.iterrows(), treated(runs) if not runs.empty else []):
        ranks = [r.get(keys.final(keys.rank_key(r['headline'], l))) for l in range(1, int(r["hidden_layers"]) + 1)]
        if any(v is None or v != v for v in ranks) or len(ranks) < 2:
            continue
        rows.append({"treated": bool(is_treated), "grows": all(b >= a for a, b in zip(ranks, ranks[1:]))})
    if not rows:
        return _untested(spec, "no runs")
    t = pd.DataFrame(rows)
    parts, grades = [], []
    for label, g in (("baselines", t[~t["treated"]]), ("treatment", t[t["treated"]])):
        if g.empty:
            continue
        k, n = int(g["grows"].sum()), len(g)
        ci = binomtest(k, n).proportion_ci(0.95)
        parts.append(f"{label}: non-decreasing in {k} of {n} runs ({k / n:.0%}, 95 % CI {ci.low:.0%}–{ci.high:.0%})")
        grades.append("holds" if ci.low > 0.5 else "fails" if ci.high < 0.5 else "open")  # a majority, at 95 %
    # the paper's networks had standard initialisations: there the claim must hold; SFLI's first layer is
    # diverse by construction, so it holding or not there decides between reproduced and partly
    verdict = {"fails": Verdict.NOT_REPRODUCED, "open": Verdict.INCONCLUSIVE}.get(
        grades[0], Verdict.REPRODUCED if all(g == "holds" for g in grades) else Verdict.PARTLY)
    return Judgement(spec.claim, spec.source, verdict, "layerwise tables (final rows)", "; ".join(parts),
                     "end of every evaluation run, all studies the claim reads")


def condensation(table: pd.DataFrame, conventions: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Orientations ≤ 2p in the initial stage (the claim's time) for every activation with a multiplicity."""
    if table.empty or "stage_above_2p" not in table:
        return _untested(spec, "no condensation study")
    t = table[table["p"].notna() & (table["layer"] == 1)]
    over_stage = t[t["stage_above_2p"] > 0]
    over_end = t[t["above_2p"] > 0]
    seeds = int(t["seeds"].max())
    parts = [f"{r['arm']} (2p = {int(r['2p'])}): max {int(r['stage_orientations_max'])} in the initial stage "
             f"(step {r['stage_step_median']:g}), {int(r['orientations_max'])} at the end"
             for _, r in t.iterrows()]
    verdict = (Verdict.REPRODUCED if over_stage.empty else Verdict.PARTLY if len(over_stage) < len(t)
               else Verdict.NOT_REPRODUCED)
    statistic = (f"first layer, {seeds} seeds per arm: seeds above 2p in the initial stage "
                 f"{int(t['stage_above_2p'].sum())}, at the end {int(t['above_2p'].sum())} "
                 f"({', '.join(over_end['arm']) or 'none'}); " + "; ".join(parts))
    if not conventions.empty:
        per = []
        for (threshold, fraction), c in conventions.groupby(["threshold", "min_fraction"], sort=False):
            over = c[c["stage_above_2p"] > 0]
            per.append(f"D ≥ {threshold:g}, clusters ≥ {fraction:.0%}: "
                       + (", ".join(f"{r['arm']} {int(r['stage_above_2p'])}/{int(r['seeds'])}"
                                    for _, r in over.iterrows()) or "none"))
        statistic += ". Seeds above 2p in the initial stage under each clustering convention: " + "; ".join(per)
    return Judgement(spec.claim, spec.source, verdict, "§ condensation: tables and heat maps", statistic,
                     "the paper's settings: 100 Adam steps (5-50-1), 1000 (residual)")


def _staircase_test(ev: Evidence, spec: ClaimSpec) -> Judgement:
    runs = ev.runs_for(spec)
    if runs.empty:
        return _untested(spec, "no staircase study")
    return staircase(per_run_staircase(curves_of(ev.uri, runs)), arms_by_role(runs)[0], int(runs["budget"].max()),
                     spec)


def _condensation_test(ev: Evidence, spec: ClaimSpec) -> Judgement:
    runs = ev.runs_for(spec)
    if runs.empty:
        return _untested(spec, "no condensation study")
    return condensation(condensation_table(with_stage(ev.uri, runs)), convention_check(ev.uri, runs), spec)


# the tests a catalogue entry names (analysis/catalogue.yaml: `test:`)
TESTS: dict[str, Callable[[Evidence, ClaimSpec], Judgement]] = {
    "initial_rank": lambda ev, spec: initial_rank(ev.runs_for(spec), spec),
    "speed": lambda ev, spec: speed(ev.speed_for(spec), spec),
    "accuracy": lambda ev, spec: accuracy(ev.speed_for(spec), spec),
    "staircase": _staircase_test,
    "depth": lambda ev, spec: depth(ev.runs_for(spec), spec),
    "condensation": _condensation_test,
}


def judge(evidence: Evidence, specs: list[ClaimSpec]) -> pd.DataFrame:
    """One row per claim of the catalogue: claim, source, verdict, evidence, statistic, budget."""
    return pd.DataFrame([vars(TESTS[spec.test](evidence, spec)) for spec in specs])
