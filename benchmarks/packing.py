"""Packed runs against the unpacked pipeline on the same two cores (or one GPU with --device cuda).

Reference: what `pack: 1` does with two cores — two single-thread runs side by side (two processes, started
together). Packed: two single-thread processes side by side, each training a pack of P runs (what the
pipeline does with `pack: P` and `resources.cpus: 1`), and one two-thread process training a pack of 2P.
The figure is model-steps per second (runs × optimiser steps ÷ the slower process's step time); ε-rank and
logging are off, so this is the optimiser step alone. `auto` is what `resources.pack: auto` picks for the
workload (sfli_core.pack_size, measured on one thread) and the side-by-side ratio at that size (1.0 at 1).

    python benchmarks/packing.py [--device cpu|cuda] [--seconds 1.5]
Prints one line per workload ending in its best ratio, e.g. `poisson2d 3x64: 1.7x`.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

import torch

from sfli_core.config import RunConfig
from sfli_core.pack import Pack
from sfli_core.pack_size import choose, measure, timing_config

WORKLOADS = {
    "condensation 5-50-1": {"task": {"name": "sine_sum"}, "model": {"width": 50, "depth": 1},
                            "init": {"name": "small_gaussian", "scale": 0.005}, "train": {"n_train": 80}},
    "fit1d_multiscale 3x32": {"task": {"name": "fit1d_multiscale"}, "model": {"width": 32, "depth": 3}},
    "fit1d_multiscale 3x100": {"task": {"name": "fit1d_multiscale"}, "model": {"width": 100, "depth": 3}},
    "poisson2d 3x64": {"task": {"name": "poisson2d"}, "model": {"width": 64, "depth": 3}},
    "helmholtz2d modified_mlp 3x64": {"task": {"name": "helmholtz2d_a1-4_k1"},
                                      "model": {"arch": "modified_mlp", "width": 64, "depth": 3}},
}
SIZES = (4, 8, 16)


def workload(name: str, device: str) -> RunConfig:
    spec = WORKLOADS[name]
    return RunConfig.model_validate({**spec, "train": {**spec.get("train", {}), "device": device}})


def _worker(args: tuple[RunConfig, int, int, int, object]) -> float:
    """Step time of a pack of ``size`` (seeds offset by ``first``) after a warm-up, started at the barrier."""
    cfg, size, steps, threads, barrier = args
    torch.set_num_threads(threads)
    Pack([timing_config(cfg, 3, s) for s in range(size)]).run()  # warm-up: allocation, first-call costs
    pack = Pack([timing_config(cfg, steps, s) for s in range(size)])
    barrier.wait()
    pack.run()
    return sum(m.train_seconds for m in pack.members)


def side_by_side(cfg: RunConfig, size: int, steps: int, processes: int, threads: int) -> float:
    """Model-steps/s of ``processes`` processes side by side, each a pack of ``size`` on ``threads`` threads."""
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(processes)
        with ctx.Pool(processes) as pool:
            times = pool.map(_worker, [(cfg, size, steps, threads, barrier)] * processes)
    return processes * size * steps / max(times)


def steps_for(cfg: RunConfig, seconds: float) -> int:
    """Optimiser steps that take about ``seconds`` alone on one thread."""
    torch.set_num_threads(1)
    rate = measure(cfg, largest=1, seconds=0.3)[1]
    return max(20, round(seconds * rate))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=1.5, help="length of the reference measurement")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to this process")
    print(f"packing on {args.device}: model-steps/s of packs ÷ two single-thread solo runs side by side "
          f"(torch {torch.__version__}, {mp.cpu_count()} cores)")
    for name in WORKLOADS:
        cfg = workload(name, args.device)
        steps = steps_for(cfg, args.seconds)
        reference = side_by_side(cfg, 1, steps, processes=2, threads=1)
        found = {}
        for size in SIZES:
            pack_steps = max(5, steps // size)
            found[f"2 x pack {size}, 1 thread each"] = side_by_side(cfg, size, pack_steps, 2, 1)
            found[f"pack {2 * size}, 2 threads"] = side_by_side(cfg, 2 * size, max(5, steps // (2 * size)), 1, 2)
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        auto = choose(measure(cfg, largest=16))
        auto_s = time.perf_counter() - t0
        auto_ratio = (side_by_side(cfg, auto, max(5, steps // auto), 2, 1) / reference) if auto > 1 else 1.0
        best = max(found, key=found.get)
        detail = "  ".join(f"{k}: {v / reference:.2f}" for k, v in found.items())
        print(f"  solo {reference:8.0f} model-steps/s; {detail}")
        print(f"  auto picks {auto} ({auto_s:.1f} s to measure): {auto_ratio:.2f}x; best: {best}")
        print(f"{name}: {found[best] / reference:.1f}x", flush=True)


if __name__ == "__main__":
    main()
