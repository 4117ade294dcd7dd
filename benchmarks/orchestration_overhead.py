"""Orchestration overhead of a 16-run study on a local 2-CPU Ray instance.

Measured in one run: the total wall time of `start_study` (Ray start, MLflow store, both phases) against the
sum of the trials' own training wall time (the trainer's `time/wall_s` at its last step) divided by the
parallelism (2). Target: ≤ 1.3×. Also the batches per logging step per run, counted from the store: a logging
step's metrics are stamped with one timestamp when queued, so distinct (timestamp, step) pairs among the
per-step keys are its batches (target: 1, a step never split). The background channel then sends every step
queued within a second as one call per run (pipelines.metric_buffer), which the store does not show.

With packing, a member's `time/wall_s` is its share of the pack's steps plus its own evaluations, so the sum
over runs is still the training work done.

Where the time beyond training goes (Linux): every process of the study is sampled from /proc four times a
second, and its CPU seconds are summed by kind — this driver (from the call on), Ray's own processes (its
servers, helpers and pre-started workers), the trial processes — before the first run opened and over the
whole study. Beside the two cores' capacity over the same wall time, they say how much of the start-up is
work that has to be done on these cores and how much is waiting.

    python benchmarks/orchestration_overhead.py [--steps 1500] [--width 64] [--pack auto|1|N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import yaml

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
RAY_OWN = ("ray::IDLE", "ray::DashboardAgent", "ray::RuntimeEnvAgent")  # Ray's, not a trial's, despite the name


class ProcessCPU:
    """CPU seconds (user + system) of this process and its descendants, sampled from /proc every ``every`` s:
    per process, (time, CPU so far) samples and its last command line (Ray renames its workers). The sampling
    thread's own CPU is not counted as the driver's."""

    def __init__(self, every: float = 0.25):
        self.every, self.samples, self.names = every, {}, {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        mine = {os.getpid()}
        while not self.stop.wait(self.every):
            now = time.time()
            for proc in sorted(Path("/proc").glob("[0-9]*"), key=lambda p: int(p.name)):
                try:
                    fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(proc.name) not in mine and int(fields[1]) not in mine:  # fields[1]: the parent
                        continue
                    mine.add(int(proc.name))
                    name = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                    if name:  # an exiting process's is empty
                        self.names[int(proc.name)] = name
                except (OSError, IndexError, ValueError):
                    continue  # gone meanwhile
                cpu = (int(fields[11]) + int(fields[12])) / TICK - (time.thread_time() if proc.name == str(
                    os.getpid()) else 0.0)
                self.samples.setdefault(int(proc.name), []).append((now, cpu))

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()

    def kind(self, pid: int) -> str:
        name = self.names.get(pid, "")
        if pid == os.getpid():
            return "driver"
        return "trials" if name.startswith("ray::") and not name.startswith(RAY_OWN) else "ray"

    def used(self, since: float, until: float) -> dict[str, float]:
        """CPU seconds per kind between two times (a process's last sample at or before each)."""
        total = {"driver": 0.0, "ray": 0.0, "trials": 0.0}
        for pid, series in self.samples.items():
            at = [cpu for t, cpu in series if t <= until]
            before = [cpu for t, cpu in series if t <= since]
            if at:
                total[self.kind(pid)] += at[-1] - (before[-1] if before else 0.0)
        return total

    def processes(self, kind: str) -> int:
        return sum(1 for pid in self.samples if self.kind(pid) == kind)


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
        sampler = ProcessCPU() if Path("/proc/self/stat").exists() else None
        time.sleep(0.6)  # a first sample of this process before the call
        t0, t_start = time.perf_counter(), time.time()
        state = start_study(str(study), runs=str(Path(tmp) / "runs"), num_cpus=2)
        total, t_end = time.perf_counter() - t0, time.time()
        if sampler is not None:
            sampler.finish()
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
    if sampler is None:
        print("CPU by process: needs Linux's /proc")
        return
    for label, until in (("before the first run opened", starts[0]), ("over the whole study", t_end)):
        cpu, length = sampler.used(t_start, until), until - t_start
        print(f"CPU {label}: {sum(cpu.values()):.1f} of {2 * length:.1f} core-s (2 cores x {length:.1f} s)\n"
              f"  driver {cpu['driver']:.1f} s, Ray's processes {cpu['ray']:.1f} s ({sampler.processes('ray')}), "
              f"trial processes {cpu['trials']:.1f} s ({sampler.processes('trials')})")
    print(f"  the runs' training: {sum(train):.1f} s; 1.3x the ideal leaves {2 * 1.3 * ideal - sum(train):.1f} core-s "
          "for everything else")


if __name__ == "__main__":
    main()
