"""ε-rank cost: training time with the ε-rank of every hidden layer computed at the default logging cadence,
against the same run with ε-rank off. 4×128 tanh MLP on poisson2d. Target: overhead ≤ 5 %.

Both are timed in the same process, interleaved, best of R repetitions (whole-run wall time).
    python benchmarks/rank_cost.py [--steps 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from sfli_core.config import RunConfig, TrainConfig
from sfli_core.trainer import Trainer


def seconds(rank: bool, steps: int) -> tuple[float, int]:
    cfg = RunConfig(task={"name": "poisson2d"}, model={"width": 128, "depth": 4}, init={"name": "sfli"},
                    train={"steps": steps}, rank={"enabled": rank})
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    trainer.run()
    return time.perf_counter() - t0, len(trainer.rank_x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    off, on = [], []
    for _ in range(args.repeats):
        off.append(seconds(False, args.steps)[0])
        t, n_points = seconds(True, args.steps)
        on.append(t)
    cadence = TrainConfig().log_every
    print(f"poisson2d, MLP 4x128 tanh, {args.steps} steps, log_every {cadence} (default), ε ∈ {{1e-2,1e-3,1e-4}}, "
          f"{n_points} evaluation points, torch threads {torch.get_num_threads()}")
    print(f"rank off: {min(off):.2f} s   rank on: {min(on):.2f} s   (best of {args.repeats})")
    print(f"overhead: {100 * (min(on) / min(off) - 1):.1f} %  (target <= 5 %)")


if __name__ == "__main__":
    main()
