"""PINN step cost by derivative path, every built-in architecture, measured in one run.

For each architecture (MLP, modified MLP, PirateNet with and without Fourier features) and each shipped PDE
task, one training step of a real :class:`sfli_core.trainer.Trainer` (loss terms, parameter gradients, Adam
update) is timed on the reference path (nested reverse mode, ``train.derivatives = autograd``) and on Taylor
mode compiled (``derivatives = taylor``, ``compile = on``; sfli_core.fields), after checking that both give
the same loss terms. Compilation is timed separately (the first step), and "amortised" charges it to a run of
``--steps`` steps, as a study pays it once per process (inductor's on-disk cache makes later processes
cheaper: run twice to see the warm figure). The two paths are timed in alternating blocks of steps, so that
both see the same machine (a shared CPU's speed drifts by tens of percent within minutes): each path's ms is
its fastest block, the step speed-up the median of the ratios of adjacent blocks.

    python benchmarks/pinn_derivatives.py [--width 64] [--depth 3] [--points 512] [--threads 1] [--steps 5000]

Output (120 columns): one line per architecture and task — nested → Taylor ms per step, the first step's
seconds (compilation), the loss terms' relative agreement, the speed-up over ``--steps`` steps with
compilation charged and the step speed-up — then one line per architecture ending with the geometric mean of
its step speed-ups over the reference.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch

from sfli_core.config import RunConfig
from sfli_core.trainer import Trainer

ARCHITECTURES = {
    "mlp": ("mlp", {}),
    "modified_mlp": ("modified_mlp", {}),
    "pirate": ("pirate", {}),
    "pirate (dense embedding)": ("pirate", {"fourier_features": False}),
}
TASKS = ["helmholtz2d_a1-4_k1", "allen_cahn_d1e-4", "poisson2d", "advection1d_c30"]


def trainer(arch: str, params: dict, task: str, args, **train) -> Trainer:
    return Trainer(RunConfig.model_validate({
        "task": {"name": task},
        "model": {"arch": arch, "width": args.width, "depth": args.depth, "activation": "tanh", "params": params},
        "train": {"steps": args.steps, "n_train": args.points, "device": args.device, **train},
        "rank": {"enabled": False}, "seed": 0}))


def first_step_s(t: Trainer) -> float:
    """The first step's seconds (compilation, when compiled), then three untimed steps."""
    t0 = time.perf_counter()
    t.train_step(t.params, t.opt_state, t.batch, 1e-4)
    _sync(t)
    first = time.perf_counter() - t0
    for _ in range(3):
        t.train_step(t.params, t.opt_state, t.batch, 1e-4)
    return first


def block_ms(t: Trainer, repeats: int) -> float:
    """Mean ms per step over ``repeats`` steps."""
    _sync(t)
    t0 = time.perf_counter()
    for _ in range(repeats):
        t.train_step(t.params, t.opt_state, t.batch, 1e-4)
    _sync(t)
    return (time.perf_counter() - t0) / repeats * 1e3


def paired_ms(a: Trainer, b: Trainer, repeats: int, blocks: int) -> tuple[float, float, float]:
    """(a's ms per step, b's, a ÷ b): blocks of ``repeats`` steps alternate between the two, so that both see
    the same machine (a shared CPU's speed drifts by tens of percent within minutes); the times are each one's
    fastest block, as ``timeit`` advises, and the ratio the median of the ratios of adjacent blocks."""
    pairs = [(block_ms(a, repeats), block_ms(b, repeats)) for _ in range(blocks)]
    return min(p[0] for p in pairs), min(p[1] for p in pairs), statistics.median(x / y for x, y in pairs)


def _sync(t: Trainer) -> None:
    if t.device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--points", type=int, default=512, help="collocation points (pinn_suite: 512)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial uses 1 per CPU)")
    parser.add_argument("--steps", type=int, default=5000, help="run length that compilation is charged to")
    parser.add_argument("--repeats", type=int, default=20, help="steps per timed block")
    parser.add_argument("--blocks", type=int, default=9, help="timed blocks per path, alternating")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--task", nargs="*", default=TASKS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{args.width}×{args.depth} tanh, {args.points} collocation points, {args.threads} thread(s), "
          f"{args.device}, float32, torch {torch.__version__}; step = loss terms + gradients + Adam")
    for name in args.arch:
        arch, params = ARCHITECTURES[name]
        ratios = []
        for task in args.task:
            reference = trainer(arch, params, task, args, derivatives="autograd")
            taylor = trainer(arch, params, task, args, derivatives="taylor", compile="on")
            assert taylor.plan.taylor, taylor.plan.note
            ref_terms = reference.loss_terms(reference.batch)
            first_step_s(reference)
            compile_s = first_step_s(taylor)
            assert taylor.plan.compiled, taylor.plan.note
            old, new, ratio = paired_ms(reference, taylor, args.repeats, args.blocks)
            new_terms = trainer(arch, params, task, args, derivatives="taylor", compile="on").loss_terms(taylor.batch)
            gap = max(abs(float(new_terms[k].detach() - v.detach())) / (abs(float(v.detach())) + 1e-30)
                      for k, v in ref_terms.items())
            amortised = args.steps * old / (compile_s * 1e3 + args.steps * new)
            ratios.append(ratio)
            print(f" {name:24s} {task:19s} {old:5.1f} → {new:5.1f} ms  compile {compile_s:4.0f} s "
                  f"agree {gap:.0e} {args.steps} steps {amortised:4.2f}×  step {ratio:4.2f}×", flush=True)
        mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
        print(f"{name} ({len(ratios)} tasks): per-step speed-up over nested autograd {mean:.2f}×", flush=True)


if __name__ == "__main__":
    main()
