"""Which runs of a phase train together (``resources.pack``), decided once per phase and kept in the study's
state, so that a resumed phase has the same trials.

Evaluate: the runs (cell × evaluation seed) are grouped by what a pack must share (sfli_core.pack
``pack_signature``); each group is cut into packs of at most the chosen size, as even as possible, ordered
seed-major so that the arms of one seed share a pack (they then share its step times too). Search: a trial's
search seeds are trained in packs of the chosen size. The size is never more than the runs divided by the
trials the cluster runs at once, so packing never leaves a slot idle. ``auto`` measures on a Ray worker with
a trial's resources (sfli_core.pack_size).
"""

from __future__ import annotations

import math
from typing import Any

import ray
import torch

from sfli_core.config import RunConfig
from sfli_core.pack import pack_signature, packable
from sfli_core.pack_size import decide, measure

from .study import Cell, Study, extend_python_path
from .terminal import say

Member = list  # [arm, grid point index, seed]: JSON in the study's state and Tune's trial config


def parallel_trials(study: Study) -> int:
    """How many trials the Ray cluster runs at once with the study's per-trial resources."""
    total = ray.cluster_resources()
    if study.resources.gpus:
        return max(1, int(total.get("GPU", 0) // study.resources.gpus))
    return max(1, int(total.get("CPU", 1) // study.resources.cpus))


def pack_size(study: Study, cfg: RunConfig, largest: int) -> tuple[int, str]:
    """(size, why) for runs of configuration ``cfg``, at most ``largest`` per pack."""
    setting = study.resources.pack
    if setting == 1:
        return 1, "pack: 1"
    reason = packable(cfg)
    if reason:
        return 1, reason
    if largest < 2:
        return 1, "one run per parallel trial already"
    if setting != "auto":
        return min(setting, largest), f"pack: {setting}"
    worker = ray.remote(num_cpus=study.resources.cpus, num_gpus=study.resources.gpus)(_measure)

    def rates_of(timed: RunConfig, up_to: int) -> dict[int, float]:
        # measured as trials run: as many side by side as the cluster runs at once (up to 4), so that the
        # contention for memory bandwidth and caches between neighbours is in the figure; their mean rates
        measured = ray.get([worker.remote(timed, up_to, max(1, int(study.resources.cpus)), study.python_path)
                            for _ in range(min(parallel_trials(study), 4))])
        return {size: sum(r[size] for r in measured) / len(measured) for size in sorted(set.intersection(
            *(set(r) for r in measured)))}

    size, rates, alone = decide(cfg, largest, rates_of)
    shown = ", ".join(f"{k}: {v:.0f}" for k, v in rates.items())
    return size, f"auto; model-steps/s by pack size: {shown}" + (f" ({alone})" if alone else "")


def _measure(cfg: RunConfig, largest: int, threads: int, python_path: list[str]) -> dict[int, float]:
    extend_python_path(python_path)
    torch.set_num_threads(threads)
    return measure(cfg, largest)


def evaluation_packs(study: Study, chosen: dict[str, dict[str, Any]]) -> list[list[Member]]:
    """The evaluate phase's trials, each a list of members [arm, grid point index, seed]."""
    groups: dict[str, list[tuple[Cell, RunConfig]]] = {}
    for cell in study.cells():
        cfg = study.run_config(cell.arm, chosen.get(cell.key, {}), grid_point=study.grid_points()[cell.point])
        key = pack_signature(cfg) if packable(cfg) is None else cell.key  # an unpackable cell stays alone
        groups.setdefault(key, []).append((cell, cfg))
    packs: list[list[Member]] = []
    for cells in groups.values():
        members = [[cell.arm, cell.point, seed] for seed in study.evaluate.seeds for cell, _ in cells]
        size, why = pack_size(study, cells[0][1], math.ceil(len(members) / parallel_trials(study)))
        say(f"[evaluate] {group_name([cell for cell, _ in cells])}: {len(members)} runs in packs of up to {size} "
            f"({why})")
        packs += split(members, size)
    return packs


def search_pack(study: Study, cell: Cell) -> int:
    """How many search seeds a search trial of ``cell`` trains at once."""
    cfg = study.run_config(cell.arm, grid_point=study.grid_points()[cell.point])
    size, why = pack_size(study, cfg, len(study.search.seeds))
    if len(study.search.seeds) > 1:
        say(f"[search {cell.slug}] search seeds in packs of {size} ({why})")
    return size


def group_name(cells: list[Cell]) -> str:
    """'helmholtz2d-mlp (xavier, sfli)': each grid point once with its arms ('xavier, sfli' without a grid)."""
    arms: dict[str, list[str]] = {}
    for cell in cells:
        arms.setdefault(cell.variant, []).append(cell.arm)
    return "; ".join(", ".join(names) if variant == "base" else f"{variant} ({', '.join(names)})"
                     for variant, names in arms.items())


def split(members: list[Member], size: int) -> list[list[Member]]:
    """``members`` cut into ceil(n / size) consecutive packs whose sizes differ by at most one."""
    n = math.ceil(len(members) / size)
    bounds = [round(i * len(members) / n) for i in range(n + 1)]
    return [members[a:b] for a, b in zip(bounds, bounds[1:])]
