"""Orchestration overhead of a 16-run study on a local 2-CPU Ray instance.

Measured in one run: the total wall time of `start_study` (Ray start, MLflow store, both phases) against the
sum of the trials' own training wall time (the trainer's `time/wall_s` at its last step) divided by the
parallelism (2). Target: ≤ 1.3×. Also the batches per logging step per run, counted from the store: a logging
step's metrics are stamped with one timestamp when queued, so distinct (timestamp, step) pairs among the
per-step keys are its batches (target: 1, a step never split). The background channel then sends every step
queued within a second as one call per run (pipelines.metric_buffer), which the store does not show.

With packing, a member's `time/wall_s` is its share of the pack's steps plus its own evaluations, so the sum
over runs is still the training work done.

    python benchmarks/orchestration_overhead.py [--steps 1500] [--width 64] [--pack auto|1|N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import yaml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--pack", default="1", help="resources.pack of the study (1, N or auto)")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    from pipelines.runner import start_study

    pack = args.pack if args.pack == "auto" else int(args.pack)
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "bench.yaml"
        study.write_text(yaml.safe_dump({
            "name": "overhead",
            "base": {"task": {"name": "fit1d_multiscale"}, "model": {"width": args.width, "depth": 3},
                     "train": {"steps": args.steps, "log_every": args.log_every}},
            "arms": {"xavier": {"set": {"init.name": "xavier_normal"}}, "sfli": {"set": {"init.name": "sfli"}}},
            "evaluate": {"seeds": list(range(8))}, "resources": {"cpus": 1, "pack": pack}}))
        t0, t_start = time.perf_counter(), time.time()
        state = start_study(str(study), runs=str(Path(tmp) / "runs"), num_cpus=2)
        total = time.perf_counter() - t0
        client = MlflowClient(state.tracking_uri)
        runs = client.search_runs([state.experiment_id], filter_string="tags.run_type = 'trial'", max_results=100)
        train = [r.data.metrics["time/wall_s"] for r in runs]
        by_trial: dict[str, list] = {}
        for r in runs:
            by_trial.setdefault(r.data.tags["trial_id"], []).append(r)
        # a trial's runs open together and close one after the other: its lifetime spans them all
        bookkeeping = [(max(r.info.end_time for r in rs) - min(r.info.start_time for r in rs)) / 1000
                       - sum(r.data.metrics["time/wall_s"] for r in rs) for rs in by_trial.values()]
        starts = sorted(r.info.start_time / 1000 for r in runs)
        batches, steps = [], []
        for r in runs:
            stamps = set()
            for key in ("train/loss", "eval/rel_l2", "rank/eps1e-3/layer3", "time/wall_s"):
                stamps |= {(m.timestamp, m.step) for m in client.get_metric_history(r.info.run_id, key)}
            n_steps = len(client.get_metric_history(r.info.run_id, "train/loss"))
            batches.append(len(stamps) / n_steps)
            steps.append(n_steps)
    ideal = sum(train) / 2
    print(f"{len(runs)} runs in {len(by_trial)} trials (pack: {args.pack}), MLP 3x{args.width}, "
          f"{args.steps} steps each, 2 CPUs (1 per trial)")
    print(f"total wall time          : {total:6.1f} s")
    print(f"sum of run training / 2  : {ideal:6.1f} s   (per run {min(train):.1f}-{max(train):.1f} s)")
    print(f"ratio                    : {total / ideal:.2f}x  (target <= 1.3x)")
    startup = starts[0] - t_start
    print(f"start-up (store, Ray, first worker) : {startup:.1f} s before the first trial opened its run")
    print(f"ratio excluding start-up            : {(total - startup) / ideal:.2f}x")
    print(f"per-trial bookkeeping (its runs' lifetime - their training): {sum(bookkeeping) / len(bookkeeping):.2f} s")
    print(f"batches per logging step per run: {max(batches):.2f} (max over runs; {steps[0]} steps logged)")


if __name__ == "__main__":
    main()
