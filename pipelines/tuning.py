"""Whether a search's range held its optimum: a chosen knob in the outer tenth of its range (on a log scale for
a log-uniform knob) suggests the optimum lies beyond it, and the comparison would then be unfair to that arm."""

from __future__ import annotations

import math
from typing import Any

from .study import Cell, Distribution, Study
from .terminal import plural

EDGE = 0.1  # the outer tenth of a range, at either end


def edge_side(dist: Distribution, value: Any) -> str | None:
    """'lower' or 'upper' when ``value`` lies in the outer tenth of ``dist``'s range, else None (a choice has
    no edges)."""
    if dist.type == "choice":
        return None
    low, high, x = float(dist.low), float(dist.high), float(value)
    if dist.type == "log_uniform":
        low, high, x = math.log(low), math.log(high), math.log(x)
    where = (x - low) / (high - low)
    return "lower" if where < EDGE else "upper" if where > 1 - EDGE else None


def edge_flags(study: Study, cell: Cell, knobs: dict[str, Any]) -> dict[str, str]:
    """Knob → a sentence for each chosen knob of ``cell`` at an edge of its range."""
    space = study.arms[cell.arm].search or {}
    flags = {}
    for knob, value in knobs.items():
        side = edge_side(space[knob], value) if knob in space else None
        if side:
            dist = space[knob]
            flags[knob] = (f"{knob} chosen at the {side} edge of [{dist.low:g}, {dist.high:g}] ({value:.3g}): widen "
                           "the range")
    return flags


def search_plan(study: Study) -> tuple[list[str], list[str]]:
    """Each arm's search side by side (trials per grid point, sampler, seeds, successive halving, knobs and
    ranges), and warnings where arms are not searched alike: a comparison is only as fair as the baseline's
    tuning."""
    search = study.search
    halving = (f"ASHA from {search.asha.grace_period} logging steps, factor {search.asha.reduction_factor:g}"
               if search.asha.enabled else "no pruning")
    lines, spaces = [], {}
    for arm, spec in study.arms.items():
        space = spec.search or {}
        spaces[arm] = space
        knobs = "; ".join(f"{k} {_range(d)}" for k, d in space.items()) or "none (fixed knobs)"
        trials = plural(search.trials if space else 0, "trial")
        lines.append(f"  search {arm}: {trials} per grid point; {knobs}")
    if study.has_search:
        start_up = plural(study.startup_trials, "random start-up trial")
        lines.append(f"  every search: {search.sampler} sampler (seed {search.sampler_seed}, {start_up}), "
                     f"search seeds {search.seeds}, {halving}")
    warnings = []
    unsearched = [arm for arm, space in spaces.items() if not space]
    if study.has_search and unsearched:
        warnings.append(f"arms {', '.join(unsearched)} are not searched while others are: their knobs are fixed")
    knob_sets = {arm: sorted(space) for arm, space in spaces.items() if space}
    if len({tuple(v) for v in knob_sets.values()}) > 1:
        warnings.append("arms search different knobs: " + "; ".join(f"{a}: {', '.join(k)}" for a, k in
                                                                    knob_sets.items()))
    for arm, space in spaces.items():
        for knob, dist in space.items():
            if dist.type == "log_uniform" and math.log10(dist.high / dist.low) < 2 - 1e-9:
                warnings.append(f"arms.{arm}.search.{knob} spans {math.log10(dist.high / dist.low):.1f} decades; "
                                "two or more are more likely to hold the optimum")
    if study.has_search and search.trials < 16:
        warnings.append(f"search.trials is {search.trials}: fewer than 16 trials per cell leaves TPE little to do "
                        "beyond its random start-up")
    return lines, warnings


def _range(dist: Distribution) -> str:
    if dist.type == "choice":
        return f"in {dist.values}"
    span = f"[{dist.low:g}, {dist.high:g}]"
    if dist.type == "log_uniform":
        return f"{span} log ({math.log10(dist.high / dist.low):.1f} decades)"
    return span
