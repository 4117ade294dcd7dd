"""The source papers' claims judged against recorded runs: one test per kind of claim (:data:`TESTS`), each
returning a :class:`Judgement` with the effect and the statistic it rests on; which claim a test judges on
which studies, tasks and architectures is data (analysis/catalogue.yaml). Read-only, like the rest of
:mod:`analysis`.

Verdicts (:class:`Verdict`, the rule the results page states): a claim with a pooled effect
(analysis.pooled: speed, accuracy, initial ε-rank) is *supported* when the effect is in the claimed direction
and its p, Holm-adjusted across every such claim on the page, is below 0.05 (its 95 % interval then excludes
no effect); *contradicted* when the same holds in the other direction; *inconclusive* otherwise; *not tested*
when no recorded run covers it. A claim judged by a rule of its own says so in its statistic (the staircase:
three one-sided tests, all at 0.05; depth: a 95 % binomial interval of the share of runs; condensation: a
maximum count, which one seed above 2p contradicts). No direction is ever taken from a point estimate alone.
The treatment is every arm whose initialisation's recorded role is ``treatment``
(:func:`analysis.runs.treated`: SFLI, or a user's scheme registered as one), as in the speed-up tables.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import pandas as pd
from scipy.stats import binomtest, mannwhitneyu, wilcoxon
from statsmodels.stats.multitest import multipletests

from sfli_core import keys
from sfli_core.staircase import staircase_stats

from .catalogue import ClaimSpec
from .condensation import condensation_table, convention_check, with_stage
from .curves import common_window, curves_of
from .pooled import CELL, Pooled, cell_effects, final_error, paired_log_ratios, pool, restricted_steps
from .runs import arms_by_role, treated

ALPHA = 0.05


class Verdict(StrEnum):
    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"
    NOT_TESTED = "not tested"


@dataclass
class Judgement:
    claim: str
    source: str
    verdict: Verdict
    effect: str  # the pooled effect with its 95 % interval and heterogeneity ("—" for a rule of its own)
    statistic: str  # the numbers the verdict rests on
    seeds_needed: str  # inconclusive: evaluation seeds per cell that would decide it, and the --set line
    evidence: str  # where to look: a section, table or figure of docs/results.md
    budget: str
    sensitivity: str = "—"  # the verdict's dependence on ε, where ε enters
    p: float = math.nan  # the pooled effect's p (adjusted across the page by judge()); NaN for own rules
    direction: int = 0  # the sign of the pooled effect: +1 the claimed direction
    pooled: Pooled | None = None  # the pooled effect, and each study's first evaluation seed behind it: for
    first_seeds: dict[str, int] = field(default_factory=dict)  # the seeds a decision would need


def _from_pooled(spec: ClaimSpec, pooled: Pooled | None, what: str, evidence: str, budget: str,
                 pairs: pd.DataFrame | None = None) -> Judgement:
    """A judgement from a pooled effect; the verdict is set by :func:`judge` once p is adjusted. ``pairs``:
    the seed pairs behind it (study, seed), for the seeds a decision would need."""
    if pooled is None:
        return _untested(spec, f"no cell with two or more seed pairs ({what})")
    heterogeneity = (f"; τ² = {pooled.tau2:.2g}, I² = {pooled.i2:.0%}" if pooled.cells > 1 else "")
    effect = f"{pooled.ratio} over {pooled.cells} cells, {pooled.pairs} pairs{heterogeneity}"
    how = (f"pooled log ratio {pooled.effect:+.3f} (random effects over {pooled.cells} cells, t on "
           f"{pooled.cells - 1} df; cells that share an arm counted as independent)" if pooled.cells > 1 else
           f"mean log ratio {pooled.effect:+.3f} (one cell: paired t on {pooled.pairs - 1} df)")
    statistic = f"{what}: {how}, p = {pooled.p:.2g}"
    return Judgement(spec.claim, spec.source, Verdict.INCONCLUSIVE, effect, statistic, "—", evidence, budget,
                     p=pooled.p, direction=int(math.copysign(1, pooled.effect)) if pooled.effect else 0,
                     pooled=pooled, first_seeds=pairs.groupby("study")["seed"].min().astype(int).to_dict()
                     if pairs is not None else {})


def _seeds_needed(pooled: Pooled, first_seeds: dict[str, int], alpha: float = ALPHA) -> str:
    """What would decide an inconclusive claim at level ``alpha``: evaluation seeds per cell (with the --set
    line that runs them when the evidence is one study: its own seed range, extended), or more cells where the
    spread between cells keeps it undecided at any number of seeds."""
    needed = pooled.seeds_needed(alpha)
    if needed is None:
        return (f"more cells, not seeds (between-cell τ² = {pooled.tau2:.2g} keeps it undecided at any number "
                "of seeds)" if pooled.cells_decide(alpha) else "—")
    if len(first_seeds) != 1:
        return f"{needed} per cell" + (f" (in each of {', '.join(sorted(first_seeds))})" if first_seeds else "")
    (study, first), = first_seeds.items()
    seeds = ", ".join(str(s) for s in range(first, first + needed))
    return f"{needed} per cell: sfli run studies/{study}.yaml --set 'evaluate.seeds=[{seeds}]'"


@dataclass
class Evidence:
    """What the tests read: the evaluation runs of the page's studies, and the store."""
    uri: str
    runs: pd.DataFrame

    def runs_for(self, spec: ClaimSpec) -> pd.DataFrame:
        return _select(self.runs, spec)


def _select(table: pd.DataFrame, spec: ClaimSpec) -> pd.DataFrame:
    """The runs of ``table`` in the claim's studies, tasks and architectures."""
    if table.empty:
        return table
    keep = pd.Series(True, index=table.index)
    for column, wanted in (("study", spec.studies), ("task", spec.tasks), ("arch", spec.archs)):
        if wanted is not None:
            keep &= table[column].isin(wanted)
    return table[keep]


def _untested(spec: ClaimSpec, why: str) -> Judgement:
    return Judgement(spec.claim, spec.source, Verdict.NOT_TESTED, "—", why, "—", "—", "—")


def initial_rank_of(eps: float | None = None, relative: bool = False) -> Callable[[pd.DataFrame], pd.Series | None]:
    """The last hidden layer's initial ε-rank + 1 per run (a rank of 0 stays finite in a log ratio), at ``eps``
    (default: the study's headline ε), absolute or relative to the largest eigenvalue (``relative``)."""
    key = keys.relative_rank_key if relative else keys.rank_key

    def value(g: pd.DataFrame) -> pd.Series | None:
        col = keys.initial(key(float(g["headline"].iloc[0]) if eps is None else eps, int(g["hidden_layers"].iloc[0])))
        return g[col] + 1 if col in g else None

    return value


def initial_rank(runs: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """The last hidden layer's initial ε-rank (headline ε), treatment over baseline: the paired log ratio
    log((r_t + 1)/(r_b + 1)) per cell, pooled."""
    pairs = paired_log_ratios(runs, initial_rank_of(), higher_is_better=True) if not runs.empty else pd.DataFrame()
    if pairs.empty:
        return _untested(spec, "no paired runs")
    judged = _from_pooled(spec, pool(cell_effects(pairs)), f"median initial rank {pairs['treat'].median() - 1:g} "
                          f"(treatment) vs {pairs['base'].median() - 1:g} (baseline), headline ε",
                          "§ per study, column initial_rank; layerwise tables", "at initialisation (step 0)", pairs)
    judged.sensitivity = _eps_sensitivity(runs)
    return judged


def _eps_sensitivity(runs: pd.DataFrame) -> str:
    """The initial-rank effect at every recorded ε, absolute and relative to the largest eigenvalue (unadjusted
    95 % intervals): whether the verdict depends on ε."""
    eps_all = sorted({float(e) for e in runs["eps"].explode().dropna()}) if "eps" in runs else []
    parts, signs = [], set()
    for relative in (False, True):
        for eps in eps_all:
            pairs = paired_log_ratios(runs, initial_rank_of(eps, relative), higher_is_better=True)
            pooled = pool(cell_effects(pairs)) if not pairs.empty else None
            if pooled is None:
                continue
            signs.add(1 if pooled.low > 0 else -1 if pooled.high < 0 else 0)
            parts.append(f"{'relative ' if relative else ''}ε = {keys.fmt_num(eps)}: {pooled.ratio}")
    if not parts:
        return "—"
    verdict = "does not depend on ε" if len(signs) == 1 else "depends on ε"
    return f"{verdict} ({'; '.join(parts)})"


def _budget(runs: pd.DataFrame) -> str:
    steps = sorted({int(b) for b in runs["budget"]})
    seeds = sorted({int(n) for n in runs.groupby(["study", "variant", "arm"])["seed"].nunique()})
    return f"{'/'.join(map(str, steps))} steps, {'/'.join(map(str, seeds))} seeds per arm and cell"


def _paired(runs: pd.DataFrame, spec: ClaimSpec, value, what: str) -> Judgement:
    if runs.empty:
        return _untested(spec, "no recorded cell")
    pairs = paired_log_ratios(runs, value)
    if pairs.empty:
        return _untested(spec, "no paired treatment and baseline runs")
    cells = cell_effects(pairs)
    studies = ", ".join(sorted(cells["study"].unique()))
    return _from_pooled(spec, pool(cells), what, f"speed-up tables of {studies}", _budget(runs), pairs)


def speed(runs: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Restricted steps to each cell's first target, baseline over treatment (analysis.pooled), pooled."""
    return _paired(runs, spec, restricted_steps, "steps to the first target within the budget (a run that never got "
                   "there counts the budget), baseline over treatment")


def accuracy(runs: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Final relative L2 error, baseline over treatment, pooled."""
    return _paired(runs, spec, final_error, "final relative L2 error, baseline over treatment")


def per_run_staircase(curves: dict[str, list[pd.DataFrame]]) -> pd.DataFrame:
    """One row per run of one group: arm and its staircase statistics (docs/science.md §2), every arm over the
    group's common window (:func:`analysis.report.common_window`)."""
    window = common_window(curves)
    rows = []
    for arm, frames in curves.items():
        for frame in frames:
            f = frame.dropna()
            if len(f) >= 3 and (f["loss"] > 0).all():
                s = staircase_stats(f.index.to_numpy(), f["loss"].to_numpy(), f["rank"].to_numpy(),
                                    until=window)
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
    verdict = Verdict.SUPPORTED if all(ok) else Verdict.INCONCLUSIVE
    statistic = (f"supported when all three one-sided tests are below 0.05: baselines ({len(base)} runs): "
                 f"Spearman(−Δlog L, Δ rank) median {rho.median():.2f}, > 0 with "
                 f"one-sided Wilcoxon p = {p_rho:.1e}; rank steps median {base['rank_steps'].median():g} (baselines)"
                 f" vs {treat['rank_steps'].median():g} (treatment), Mann–Whitney p = {p_steps:.1e}; plateaus (mean) "
                 f"{base['plateaus'].mean():.2g} vs {treat['plateaus'].mean():.2g}, p = {p_plat:.1e}")
    return Judgement(spec.claim, spec.source, verdict, "—", statistic, "—", "§ staircase: statistics, segment figure",
                     f"{budget} steps, {len(treat)} treatment and {len(base)} baseline runs")


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
    # the paper's networks had standard initialisations: the claim is theirs; the treatment's share is shown
    verdict = {"fails": Verdict.CONTRADICTED, "open": Verdict.INCONCLUSIVE}.get(grades[0], Verdict.SUPPORTED)
    return Judgement(spec.claim, spec.source, verdict, "—", "judged on the baselines: a majority of runs at 95 %; "
                     + "; ".join(parts), "—", "layerwise tables (final rows)",
                     "end of every evaluation run, all studies the claim reads")


def condensation(table: pd.DataFrame, conventions: pd.DataFrame, spec: ClaimSpec) -> Judgement:
    """Orientations ≤ 2p for every activation with a multiplicity, read as the paper reads them: at epoch 100,
    the end of its 5-50-1 runs (and at the end of the residual network's 1000 steps, within the epochs its
    Fig. 4 shows); the initial stage (loss still ≥ 70 % of its start) is shown beside."""
    if table.empty or "stage_above_2p" not in table:
        return _untested(spec, "no condensation study")
    t = table[table["p"].notna() & (table["layer"] == 1)]
    over_end = t[t["above_2p"] > 0]
    seeds = int(t["seeds"].max())
    parts = [f"{r['arm']} (2p = {int(r['2p'])}): max {int(r['orientations_max'])} at the end "
             f"({int(r['above_2p'])} seeds above), {int(r['stage_orientations_max'])} in the initial stage "
             f"(step {r['stage_step_median']:g})" for _, r in t.iterrows()]
    # "at most 2p" is a bound: one seed above it in the paper's own setting is a counterexample
    verdict = Verdict.SUPPORTED if over_end.empty else Verdict.CONTRADICTED
    statistic = (f"a maximum count: one seed above 2p at the paper's time of analysis contradicts it. First layer, "
                 f"{seeds} seeds per arm: seeds above 2p at the end {int(t['above_2p'].sum())} "
                 f"({', '.join(over_end['arm']) or 'none'}), in the initial stage {int(t['stage_above_2p'].sum())}; "
                 + "; ".join(parts))
    if not conventions.empty:
        per = []
        for (threshold, fraction), c in conventions.groupby(["threshold", "min_fraction"], sort=False):
            over = c[c["stage_above_2p"] > 0]
            per.append(f"D ≥ {threshold:g}, clusters ≥ {fraction:.0%}: "
                       + (", ".join(f"{r['arm']} {int(r['stage_above_2p'])}/{int(r['seeds'])}"
                                    for _, r in over.iterrows()) or "none"))
        statistic += ". Seeds above 2p in the initial stage under each clustering convention: " + "; ".join(per)
    return Judgement(spec.claim, spec.source, verdict, "—", statistic, "—", "§ condensation: tables and heat maps",
                     "the paper's settings: 100 Adam steps (5-50-1), 1000 (residual)")


def _staircase_test(ev: Evidence, spec: ClaimSpec) -> Judgement:
    runs = ev.runs_for(spec)
    if runs.empty:
        return _untested(spec, "no staircase study")
    stats = pd.concat([per_run_staircase(curves_of(ev.uri, g)) for _, g in runs.groupby(CELL, sort=True)],
                      ignore_index=True)
    return staircase(stats, arms_by_role(runs)[0], int(runs["budget"].max()), spec)


def _condensation_test(ev: Evidence, spec: ClaimSpec) -> Judgement:
    runs = ev.runs_for(spec)
    if runs.empty:
        return _untested(spec, "no condensation study")
    return condensation(condensation_table(with_stage(ev.uri, runs)), convention_check(ev.uri, runs), spec)


# the tests a catalogue entry names (analysis/catalogue.yaml: `test:`)
TESTS: dict[str, Callable[[Evidence, ClaimSpec], Judgement]] = {
    "initial_rank": lambda ev, spec: initial_rank(ev.runs_for(spec), spec),
    "speed": lambda ev, spec: speed(ev.runs_for(spec), spec),
    "accuracy": lambda ev, spec: accuracy(ev.runs_for(spec), spec),
    "staircase": _staircase_test,
    "depth": lambda ev, spec: depth(ev.runs_for(spec), spec),
    "condensation": _condensation_test,
}


def judge(evidence: Evidence, specs: list[ClaimSpec]) -> pd.DataFrame:
    """One row per claim of the catalogue: claim, source, verdict, effect, p_adj, statistic, seeds_needed,
    evidence, budget. The pooled effects' p-values are Holm-adjusted across the page's claims, and their
    verdicts set from the adjusted p (module docstring)."""
    judged = [TESTS[spec.test](evidence, spec) for spec in specs]
    pooled = [j for j in judged if j.verdict != Verdict.NOT_TESTED and not math.isnan(j.p)]
    if pooled:
        adjusted = multipletests([j.p for j in pooled], alpha=ALPHA, method="holm")[1]
        for j, p in zip(pooled, adjusted):
            j.p = float(p)
            j.verdict = (Verdict.INCONCLUSIVE if p >= ALPHA or j.direction == 0 else
                         Verdict.SUPPORTED if j.direction > 0 else Verdict.CONTRADICTED)
            if j.verdict == Verdict.INCONCLUSIVE and j.pooled is not None:
                # at Bonferroni's α/m, the strictest level Holm's adjustment across the m claims applies
                j.seeds_needed = _seeds_needed(j.pooled, j.first_seeds, ALPHA / len(pooled))
    rows = [{**{k: v for k, v in vars(j).items() if k not in ("p", "direction", "pooled", "first_seeds")},
             "p_adj": f"{j.p:.2g}" if not math.isnan(j.p) else "—"} for j in judged]
    order = ["claim", "source", "verdict", "effect", "p_adj", "statistic", "sensitivity", "seeds_needed", "evidence",
             "budget"]
    return pd.DataFrame(rows)[order] if rows else pd.DataFrame(columns=order)
