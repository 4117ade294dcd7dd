"""What `sfli validate` warns about beyond the search (pipelines.tuning): a study whose ε-rank is logged too
rarely for the staircase statistics to see a step, and evaluation seeds that another study in the same folder
also trains on the same task — a choice made there (knobs, a layout) is not confirmed on fresh seeds here, and
the two studies' pairs are not independent evidence for a claim (docs/science.md §6b)."""

from __future__ import annotations

from pathlib import Path

from sfli_core.config import ConfigError
from sfli_core.tasks import build_task

from .study import Study, load_study

MIN_RANKED = 20  # ranked logging steps a run needs for its staircase statistics (docs/science.md §2)


def study_warnings(study: Study, path: str | Path) -> list[str]:
    """Warnings for ``study`` read from ``path`` (its folder holds the studies it is compared with)."""
    return rank_cadence(study) + shared_seeds(study, Path(path))


def rank_cadence(study: Study) -> list[str]:
    out = []
    for arm in study.arms:
        cfg = study.run_config(arm, grid_point=study.grid_points()[0])
        if not cfg.rank.enabled:
            continue
        every = cfg.train.log_every * cfg.rank.every
        ranked = cfg.train.total_steps // every + 1
        if ranked < MIN_RANKED and cfg.train.total_steps >= 10 * MIN_RANKED:  # a run long enough for a staircase
            out.append(f"arm {arm}: the ε-rank is logged every {every} steps, {ranked} times in {cfg.train.total_steps}"
                       f" steps: too few for the staircase statistics to detect rank steps (≥ {MIN_RANKED}); lower "
                       "train.log_every or rank.every")
            break  # one line: the cadence is shared by the arms in practice
    return out


def shared_seeds(study: Study, path: Path) -> list[str]:
    """Other studies of ``path``'s folder that train a task of this study on one of its evaluation seeds."""
    mine = _tasks(study)
    out = []
    for other_path in sorted(path.parent.glob("*.yaml")):
        if other_path.resolve() == path.resolve():
            continue
        try:
            other = load_study(str(other_path))
        except ConfigError:
            continue  # not a study file, or one with mistakes of its own: `sfli validate` it
        seeds = sorted(set(study.evaluate.seeds) & (set(other.evaluate.seeds) | set(other.search.seeds)))
        tasks = sorted(mine & _tasks(other))
        if other.name != study.name and seeds and tasks:
            out.append(f"evaluate.seeds {_span(seeds)} are also seeds of study '{other.name}' ({other_path.name}) on "
                       f"{', '.join(tasks)}: what that study chose is not confirmed on fresh seeds here, and the two "
                       "studies' pairs are not independent evidence; give this study seeds the other never used")
    return out


def _tasks(study: Study) -> set[str]:
    names = set()
    for arm in study.arms:
        for point in study.grid_points():
            cfg = study.run_config(arm, grid_point=point)
            names.add(build_task(cfg.task.name, cfg.task.params).name)
    return names


def _span(seeds: list[int]) -> str:
    return f"{seeds[0]}–{seeds[-1]}" if seeds == list(range(seeds[0], seeds[-1] + 1)) and len(seeds) > 2 else str(seeds)
