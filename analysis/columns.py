"""What every column of the report's tables means, said once (the report prints this glossary)."""

from __future__ import annotations

GROUP = {
    "study": "the study (MLflow experiment)",
    "variant": "the grid point (base = the study has no grid)",
    "task": "the task (function fit or PDE) as registered",
    "arch": "the architecture",
}

SPEEDUP = {
    "tau": "the target τ: a run reaches it at the first logged step where the target metric is ≤ τ",
    "metric": "the target metric (the study's targets.metric)",
    "baseline": "the baseline arm (an initialisation of role baseline)",
    "treatment": "the treatment arm (SFLI, or an initialisation of role treatment)",
    "pairs": "seeds run by both arms (runs are paired by seed)",
    "budget": "optimiser steps each run had (Adam steps plus L-BFGS steps); a run that did not reach τ is "
              "censored there (a diverged run counts as not reached)",
    "reached_base": "baseline runs that reached τ within the budget",
    "reached_treat": "treatment runs that reached τ within the budget",
    "median_base": "Kaplan–Meier median steps to τ of the baseline; — when fewer than half are estimated to "
                   "reach τ within the budget",
    "median_base_low": "lower end of its 97.5 % interval (Brookmeyer–Crowley, log-log band)",
    "median_base_high": "upper end of that interval; ∞ when open (the band never reaches ½)",
    "median_treat": "Kaplan–Meier median steps to τ of the treatment",
    "median_treat_low": "lower end of its 97.5 % interval",
    "median_treat_high": "upper end of that interval; ∞ when open",
    "speedup": "headline: median_base / median_treat (> 1 = the treatment reaches τ in fewer steps)",
    "speedup_low": "lower end of its conservative 95 % interval, median_base_low / median_treat_high "
                   "(Bonferroni over the two 97.5 % intervals); with the baseline's median beyond the budget "
                   "this is the 95 % one-sided statement 'at least this much faster'",
    "speedup_high": "upper end, median_base_high / median_treat_low (∞ when open)",
    "speedup_statement": "the headline in words: 'x× [low, high]', '≥ low×' when only a lower bound holds, "
                         "'≤ high×' when only an upper one does",
    "ert_base": "expected running time of the baseline (COCO/BBOB): steps spent by all runs (the full budget "
                "for a run that missed τ) / runs that reached τ; ∞ when none did",
    "ert_treat": "expected running time of the treatment",
    "ert_ratio": "ert_base / ert_treat",
    "ert_ratio_low": "lower end of its 95 % percentile-bootstrap interval (seed pairs resampled, 5000 times; "
                     "— with fewer than 6 pairs, too few to resample)",
    "ert_ratio_high": "upper end of that interval",
    "exact_pairs": "seed pairs where both arms reached τ",
    "exact_ratio": "geometric mean over the exact pairs of steps_base / steps_treat",
    "exact_ratio_low": "lower end of its 95 % bootstrap interval",
    "exact_ratio_high": "upper end of that interval",
    "pairs_treat_only": "pairs where only the treatment reached τ (not in exact_ratio)",
    "pairs_base_only": "pairs where only the baseline reached τ (not in exact_ratio)",
    "pairs_neither": "pairs where neither reached τ",
    "logrank_p": "two-sided log-rank test of equal steps-to-τ distributions (censored runs included)",
    "logrank_p_adj": "logrank_p adjusted across the rows of this report (Benjamini–Hochberg)",
    "wall_speedup": "as speedup, in training seconds (censored at the run's training time)",
    "wall_speedup_low": "lower end of its conservative 95 % interval",
    "wall_speedup_high": "upper end of that interval",
    "error_base": "median final relative L2 error of the baseline (eval/rel_l2)",
    "error_treat": "median final relative L2 error of the treatment",
    "error_ratio": "geometric mean over seed pairs of error_base / error_treat (> 1 = the treatment ends more "
                   "accurate)",
    "error_ratio_low": "lower end of its 95 % bootstrap interval",
    "error_ratio_high": "upper end of that interval",
    "signed_rank_p": "two-sided Wilcoxon signed-rank test of log(error_base / error_treat) = 0",
    "signed_rank_p_adj": "signed_rank_p adjusted across the comparisons of this report (Benjamini–Hochberg; "
                         "each pair of arms counted once, not once per τ)",
    "signed_rank_min_p": "the smallest p the signed-rank test can give with this many pairs (2 / 2^n)",
    "underpowered": "yes when signed_rank_min_p > 0.05: no result of the test could be significant",
    "initial_rank_base": "median initial ε-rank (headline ε) of the last hidden layer, baseline",
    "initial_rank_treat": "the same for the treatment",
}

SUMMARY = {
    "grid_point": "task, architecture and grid point",
    "arms": "baseline vs treatment",
    "reached": "runs that reached τ of the seed pairs: baseline, then treatment",
    "speedup_95": "speedup_statement of the full table",
    "ert_ratio_95": "ert_ratio [ert_ratio_low, ert_ratio_high]",
    "error_ratio_95": "error_ratio [error_ratio_low, error_ratio_high]",
}

OTHER = {
    "arm": "the study's arm",
    "init": "the arm's initialisation",
    "tuned": "the knobs the arm's search tuned",
    "chosen": "the knob values the search chose (those every evaluation run of the arm used)",
    "trials": "search trials the arm had at this grid point",
    "pruned": "of those, trials stopped early by successive halving (search.asha)",
    "search_steps": "training steps the arm's search spent, summed over its trials (pruned ones included)",
    "search_seconds": "training seconds the arm's search spent, summed over its trials",
    "trials_at_once": "search trials run side by side ('2, then 1' where the search was resumed with another "
                      "count): with more than one, the choice also depends on their timing (docs/science.md §7)",
    "edge": "chosen knobs in the outer tenth of their range (log scale for log-uniform): the optimum may lie "
            "beyond it; widen the range",
    "when": "initial (step 0) or final",
    "ranks_by_layer": "median ε-rank per hidden layer, first → last",
    "grows": "whether the ε-rank is non-decreasing from the first to the last hidden layer",
    "runs": "runs the statistics are over",
    "rank_steps": "median number of rises of the last layer's ε-rank level, found as change points, up to the "
                  "smallest target (docs/science.md §2)",
    "plateaus": "median number of loss plateaus (treads followed by a faster descent to a new low), up to the "
                "smallest target",
    "plateau_steps": "median steps spent on plateaus",
    "spearman": "median Spearman correlation of Δ ε-rank with −Δ log loss over logging windows",
    "layer": "hidden layer (1 = first)",
    "activation": "the layer's activation",
    "p": "the activation's multiplicity p (condensation)",
    "2p": "the bound on condensed orientations",
    "orientations_median": "median number of condensed input-weight orientations",
    "orientations_max": "largest number over seeds",
    "lines_median": "median number of condensed lines",
    "seeds": "seeds",
    "above_2p": "seeds with more than 2p orientations at the end of the run",
    "stage_step_median": "median initial-stage step: the last logging step with the loss ≥ 70 % of its start",
    "stage_orientations_median": "median orientations in the initial stage",
    "stage_orientations_max": "largest number in the initial stage over seeds",
    "stage_above_2p": "seeds with more than 2p orientations in the initial stage",
    "threshold": "clustering threshold on the cosine similarity D (ours: 0.9)",
    "min_fraction": "smallest cluster counted as an orientation, fraction of the kept neurons (ours: 0.1)",
    "end_max": "largest orientation count over seeds at the end of the run",
    "end_above_2p": "seeds above 2p at the end of the run",
    "stage_max": "largest orientation count over seeds in the initial stage",
}

ALL = {**GROUP, **SPEEDUP, **SUMMARY, **OTHER}
