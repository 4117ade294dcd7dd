"""How many runs to pack (``resources.pack: auto``): measured, on the resources a trial gets, not guessed.

Packing pays where a step is dominated by per-operation overhead (small networks, few points, any GPU) and
costs where the step is already compute-bound (on a CPU a 3 × 100 MLP on 1 000 points runs near the peak of a
large matrix product, and stacking only adds copies). No rule of thumb separates those across machines, so
``auto`` times a few optimiser steps of the actual configuration alone and in packs of growing size (the
pipeline does so on as many workers side by side as trials will run), best of three rounds, and takes the size
with the most model-steps per second — and 1 unless packing gains at least ``MIN_GAIN``, so
that ``auto`` is never slower than ``pack: 1`` by more than the measurement's noise.

A run that compiles (Taylor mode, sfli_core.fields) runs uncompiled in a pack, so its sizes are timed
uncompiled first (:func:`decide`): compilation only speeds a run up, so where no pack beats the uncompiled run
alone by ``MIN_GAIN``, none beats the compiled one either, and the compiled run — seconds of compilation on a
warm cache, up to a minute on a cold one, in a process that trains nothing afterwards — need not be timed.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .config import RunConfig
from .fields import would_compile
from .pack import Pack

MIN_GAIN = 1.15  # below this the measurement's noise (a few %) and the per-pack bookkeeping can eat the gain
CANDIDATES = (1, 2, 4, 8, 16, 32)
MAX_TIMED_STEPS = 500
ROUNDS = 3  # timings of each size, the best kept (measure)
STEP_LIMIT = 2 + 2 + MAX_TIMED_STEPS  # warm-up, probe and the longest timing: every step an optimiser step


def timing_config(cfg: RunConfig, steps: int, seed: int) -> RunConfig:
    """``cfg`` for a throughput measurement: ``steps`` optimiser steps, one evaluation at each end, no ε-rank,
    compiled if and only if the real run is (a short timing run would otherwise take the uncompiled path)."""
    train = cfg.train.model_copy(update={"steps": steps, "log_every": steps, "lbfgs_steps": 0,
                                         "compile": "on" if would_compile(cfg) else "off"})
    return cfg.model_copy(update={"train": train, "rank": cfg.rank.model_copy(update={"enabled": False}),
                                  "seed": seed})


def model_steps_per_second(cfg: RunConfig, size: int, seconds: float) -> float:
    """size × n / (seconds of n optimiser steps of a pack of ``size`` runs of ``cfg``), n sized to take about
    ``seconds`` by a two-step probe, after a two-step warm-up (first steps allocate; a compiled run compiles
    as the pack is stacked). The step function alone is timed: the loop's evaluations and records, the same
    for every pack size, would only lengthen the measurement."""
    pack = Pack([timing_config(cfg, STEP_LIMIT, seed) for seed in range(size)])
    pack.step_fn.stack(pack.members)
    lrs = [m.lr_at(0) for m in pack.members]

    def seconds_of(steps: int) -> float:
        t0 = time.perf_counter()
        for s in range(steps):
            pack.step_fn(s, lrs)
        if pack.lead.device.type == "cuda":
            torch.cuda.synchronize(pack.lead.device)
        return time.perf_counter() - t0

    seconds_of(2)
    steps = max(3, min(MAX_TIMED_STEPS, round(seconds / (seconds_of(2) / 2))))
    return size * steps / seconds_of(steps)


def measure(cfg: RunConfig, largest: int, seconds: float = 0.3, rounds: int = ROUNDS) -> dict[int, float]:
    """Model-steps per second for the candidate sizes up to ``largest``: a first round over the sizes until
    :func:`exhausted`, then ``rounds - 1`` more over the sizes it timed, in reverse order, the best rate of each
    size kept (each timing about ``seconds`` long: :func:`model_steps_per_second`).

    One timing can fall on a neighbouring worker's start (its imports, its first allocations) or on a burst of
    other work. On 2 cores a fresh pair of workers timed the quick start's run alone at 166 model-steps/s where
    three more rounds gave 201-231, and one size's timings differed by up to a third between rounds; a
    single round chose packs of 2 or 8 that trained 15-30 % slower per run than runs alone. The best of a few
    rounds is the rate the steady state reaches (as ``timeit`` repeats and keeps the best)."""
    rates: dict[int, float] = {}
    for size in (s for s in CANDIDATES if s <= largest):
        rates[size] = model_steps_per_second(cfg, size, seconds)
        if exhausted(rates):
            break
    for _ in range(rounds - 1):
        for size in reversed(rates):
            rates[size] = max(rates[size], model_steps_per_second(cfg, size, seconds))
    return dict(sorted(rates.items()))


def exhausted(rates: dict[int, float]) -> bool:
    """Whether larger packs are not worth timing: the last two sizes both fell 10 % below the best so far. One
    dip is not enough — a pack of 2 often measures slower than a single run (the stacking's fixed cost, and
    noise) on workloads where 4 and 8 are several times faster."""
    sizes = list(rates)
    best = max(rates.values())
    return len(sizes) >= 2 and all(rates[s] < 0.9 * best for s in sizes[-2:])


def choose(rates: dict[int, float], min_gain: float = MIN_GAIN) -> int:
    """The size with the most model-steps/s if it beats running alone by ``min_gain``, else 1."""
    best = max(rates, key=rates.get)
    return best if rates[best] >= min_gain * rates[1] else 1


def decide(cfg: RunConfig, largest: int, rates_of: Callable[[RunConfig, int], dict[int, float]]
           ) -> tuple[int, dict[int, float], str]:
    """(size, model-steps/s by size, how the run alone was timed) for runs of ``cfg``, at most ``largest`` per
    pack; ``rates_of(cfg, largest)`` times the candidate sizes (:func:`measure`, on the workers trials use). A
    run that would compile (Taylor mode on a PDE task, ``train.compile`` on or auto for a long run) is timed
    uncompiled first, and compiled alone only if a pack beats that (module docstring)."""
    if not would_compile(cfg):
        rates = rates_of(cfg, largest)
        return choose(rates), rates, ""
    uncompiled = cfg.model_copy(update={"train": cfg.train.model_copy(update={"compile": "off"})})
    rates = rates_of(uncompiled, largest)
    if choose(rates) == 1:
        return 1, rates, "a run alone timed uncompiled; compiled, it is faster still"
    rates[1] = rates_of(cfg, 1)[1]
    return choose(rates), rates, "a run alone timed compiled"
