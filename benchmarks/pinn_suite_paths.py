"""End to end: a reduced ``pinn_suite`` profile on the reference derivative path against Taylor mode, in one run.

The reduced profile is the study's grid and arms on 2 of its 8 evaluation seeds (``--seeds``): 16 runs,
each the study's own run (its 5 000 steps) unless ``--steps`` says otherwise (shorter runs weigh the fixed
costs more: start, pack-size measurement, compilation, report). Both executions run the shipped study file
through the ``sfli`` command (Ray, MLflow, packing as the study sets it, every logging evaluation) with the
same reduced budget, one after the other on a fresh runs folder:
first ``--set base.train.derivatives=autograd`` (nested reverse mode, what every run used before Taylor
mode), then the default (Taylor mode, compiled for runs of ≥ 1000 steps). Compilation is included: the
Taylor-mode execution starts on an empty inductor cache (``TORCHINDUCTOR_CACHE_DIR`` in a temporary folder)
unless ``--warm-cache``. Printed: each execution's wall time, the sum of its runs' own training time
(``time/train_s``, read from its MLflow store: the steps alone, without start, pack-size measurement,
compilation, evaluations or report) and their compilation (``meta.compile_s``), and both ratios.

    python benchmarks/pinn_suite_paths.py [--steps N] [--seeds 2] [--warm-cache]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STUDY = Path(__file__).resolve().parents[1] / "studies" / "pinn_suite.yaml"


def execute(runs: Path, overrides: list[str], env: dict[str, str]) -> float:
    cmd = [sys.executable, "-m", "pipelines.cli", "run", str(STUDY), "--runs-dir", str(runs), "--num-cpus", "2"]
    for item in overrides:
        cmd += ["--set", item]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def training_seconds(runs: Path) -> tuple[float, float]:
    """(Σ time/train_s, Σ meta.compile_s) over the trial runs recorded under ``runs``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    recorded = client.search_runs([client.get_experiment_by_name(STUDY.stem).experiment_id],
                                  filter_string="tags.run_type = 'trial'", max_results=1000)
    return (sum(r.data.metrics["time/train_s"] for r in recorded),
            sum(float(r.data.params.get("meta.compile_s", 0)) for r in recorded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, help="steps per run (default: the study's own)")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--warm-cache", action="store_true", help="keep the machine's inductor cache")
    args = parser.parse_args()
    seeds = list(range(200, 200 + args.seeds))
    steps = args.steps or yaml.safe_load(STUDY.read_text())["base"]["train"]["steps"]
    reduced = [f"base.train.steps={steps}", f"evaluate.seeds={seeds}"]  # the study's grid and arms
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # this process reads the stores too
    env = os.environ | {"MLFLOW_DISABLE_TELEMETRY": "true", "RAY_USAGE_STATS_ENABLED": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.warm_cache:
            env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")
        times, training = {}, {}
        for path in ("autograd", "taylor"):
            runs = Path(tmp) / path
            times[path] = execute(runs, reduced + [f"base.train.derivatives={path}"], env)
            training[path], compiling = training_seconds(runs)
            print(f"{path:9s} {times[path]:7.1f} s; its runs trained {training[path]:6.1f} s and compiled "
                  f"{compiling:5.1f} s", flush=True)
    print(f"pinn_suite reduced: its grid and arms, {len(seeds)} seeds, {steps} steps per run, 2 CPUs, "
          f"{'warm' if args.warm_cache else 'empty'} inductor cache for Taylor mode")
    print(f"speed-up of Taylor mode over nested autograd: end to end {times['autograd'] / times['taylor']:.2f}×, "
          f"the runs' training alone {training['autograd'] / training['taylor']:.2f}×")


if __name__ == "__main__":
    main()
