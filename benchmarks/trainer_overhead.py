"""Trainer overhead: steps/s of sfli_core's Trainer (ε-rank off, default loss/error logging) against a minimal
hand-written PyTorch loop (torch.optim.Adam, loss.backward()) on the same model, task, batch and step count.

Both are timed in the same process, interleaved, best of R repetitions. Target: ratio ≥ 0.95.
    python benchmarks/trainer_overhead.py [--task fit1d_multiscale] [--steps 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from sfli_core.config import RunConfig
from sfli_core.trainer import Trainer


def config(task: str, steps: int) -> RunConfig:
    return RunConfig(task={"name": task}, model={"width": 100, "depth": 3}, init={"name": "sfli"},
                     train={"steps": steps, "log_every": 50}, rank={"enabled": False})


def trainer_seconds(cfg: RunConfig) -> float:
    trainer = Trainer(cfg)
    t0 = time.perf_counter()
    trainer.run()
    return time.perf_counter() - t0


def hand_loop_seconds(cfg: RunConfig) -> float:
    """The reference: the same initialised model and batch, the plainest training loop PyTorch offers."""
    trainer = Trainer(cfg)  # only to build the identical model, task and batch
    model, task, batch = trainer.model, trainer.task, trainer.batch
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    u = lambda x: model(x)[0]  # noqa: E731
    t0 = time.perf_counter()
    for _ in range(cfg.train.steps):
        loss = sum(task.loss_terms(u, batch).values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="fit1d_multiscale")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    cfg = config(args.task, args.steps)
    ours, ref = [], []
    for _ in range(args.repeats):
        ref.append(hand_loop_seconds(cfg))
        ours.append(trainer_seconds(cfg))
    ours_sps, ref_sps = args.steps / min(ours), args.steps / min(ref)
    print(f"task {args.task}, MLP 3x100 tanh, {args.steps} steps, torch threads {torch.get_num_threads()}")
    print(f"hand-written loop : {ref_sps:8.1f} steps/s  (best of {args.repeats})")
    print(f"sfli Trainer      : {ours_sps:8.1f} steps/s  (rank off, loss + rel_l2 logged every 50 steps)")
    print(f"ratio trainer/hand: {ours_sps / ref_sps:.3f}  (target >= 0.95)")


if __name__ == "__main__":
    main()
