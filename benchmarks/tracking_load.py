"""How many concurrent trials each tracking store holds: N simulated trials log through sfli's own Tracker.

Each simulated trial (a process; no training) opens its run as a trial does (run lookup and creation with its
tags and ~45 parameters), logs K logging steps of a realistic record (loss and 3 loss terms, rel. L2, lr,
two timings, ε-rank for 3 layers × 3 ε: 17 values; one synchronous `log_batch` each, so that its latency is
measured), then its summary (~40 values), two small artifacts, and closes the run. All N start together.
Afterwards every metric history is read back and counted: lost = sent − stored (must be 0).

Stores: (a) the embedded SQLite file; (b) `mlflow server` over SQLite; (c) `mlflow server` over PostgreSQL
(Debian's postgresql, initialised in a temporary folder, listening on 127.0.0.1 only, stopped afterwards;
needs `pip install -e ".[postgres]"`, psycopg 3). Each server runs with `--workers 1`, as in the tests, unless
`--server-workers` says otherwise. On this machine the N clients and the server share 2 cores: the figures
are what one 2-core host holds, a lower bound for a server on its own machine.

    python benchmarks/tracking_load.py [--n 1 4 16 64] [--steps 30] [--stores sqlite server-sqlite server-postgres]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

STEP_KEYS = (["train/loss", "train/loss_pde", "train/loss_bc", "train/loss_ic", "eval/rel_l2", "train/lr",
              "time/train_s", "time/wall_s"]
             + [f"rank/eps{e}/layer{layer}" for e in ("1e-2", "1e-3", "1e-4") for layer in (1, 2, 3)])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer")


def simulated_trial(args: tuple) -> dict:
    """One trial's tracking: run, params, K steps (latency of each), summary, artifacts, close."""
    uri, experiment_id, parent, index, steps, barrier = args
    from pipelines.tracking import Tracker
    from sfli_core.record import Status, TrialIdentity

    tracker = Tracker(uri)
    identity = TrialIdentity(study="load", execution=1, phase="evaluate", arm="sfli", variant="base",
                             trial_id=f"t{index:04d}", seeds=(index,), task="poisson2d", init="sfli", arch="mlp",
                             init_role="treatment")
    params = {f"param.{k}": k * 0.5 for k in range(45)}
    barrier.wait()
    errors, latencies, messages = 0, [], []
    t0 = time.perf_counter()
    try:
        run_id, _ = tracker.child_run(experiment_id, parent, f"run-{index}", identity, params)
    except Exception as err:  # noqa: BLE001 - counted, the benchmark goes on
        return {"errors": 1, "latencies": [], "run_id": None, "sent": 0, "calls": 0, "seconds": 0.0,
                "messages": [f"run creation: {err}"[:160]]}
    rng = np.random.default_rng(index)
    for step in range(steps):
        values = {k: float(v) for k, v in zip(STEP_KEYS, rng.random(len(STEP_KEYS)))}
        start = time.perf_counter()
        try:
            tracker.log_metrics(run_id, values, step * 50)
        except Exception as err:  # noqa: BLE001
            errors += 1
            messages.append(f"logging step: {err}"[:160])
        latencies.append(time.perf_counter() - start)
    try:
        tracker.log_metrics(run_id, {f"final/{k}": 1.0 for k in STEP_KEYS} | {f"initial/{k}": 1.0 for k in
                                                                               STEP_KEYS[:20]}, step=steps * 50)
        with tempfile.TemporaryDirectory() as d:
            for name in ("series.csv", "seeds.json"):
                (Path(d) / name).write_text("x" * 20000)
                tracker.log_artifact(run_id, Path(d) / name)
        tracker.finish(run_id, Status.FINISHED)
    except Exception as err:  # noqa: BLE001
        errors += 1
        messages.append(f"summary, artifacts or close: {err}"[:160])
    return {"errors": errors, "latencies": latencies, "run_id": run_id, "sent": steps * len(STEP_KEYS),
            "calls": steps, "seconds": time.perf_counter() - t0, "messages": messages}


def lost_metrics(uri: str, results: list[dict]) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    stored = 0
    for r in results:
        if r["run_id"]:
            stored += sum(len(client.get_metric_history(r["run_id"], k)) for k in STEP_KEYS)
    return sum(r["sent"] for r in results) - stored


def measure(uri: str, n: int, steps: int, timeout: float = 300) -> str:
    from pipelines.tracking import Tracker

    tracker = Tracker(uri)
    folder = Path(uri.removeprefix("sqlite:///")).parent if uri.startswith("sqlite:///") else None
    # artifacts beside an embedded store (not ./mlruns in the working directory); a server keeps its own
    experiment_id = tracker.experiment(f"load-{n}-{time.time_ns()}", folder)
    parent = tracker.parent_run(experiment_id, "load", "evaluate", 1)
    ctx = mp.get_context("fork")  # mlflow is imported once, in the parent; each child opens its own client
    with ctx.Manager() as manager:
        barrier = manager.Barrier(n)
        t0 = time.perf_counter()
        with ctx.Pool(n) as pool:
            pending = pool.map_async(simulated_trial, [(uri, experiment_id, parent, i, steps, barrier)
                                                       for i in range(n)])
            try:
                results = pending.get(timeout=timeout)
            except mp.TimeoutError:
                return f"N={n:3d}  did not finish within {timeout:.0f} s (clients waiting on the store)"
        wall = time.perf_counter() - t0
    latencies = np.array([x for r in results for x in r["latencies"]]) * 1000
    calls = sum(r["calls"] for r in results)
    errors = sum(r["errors"] for r in results)
    lost = lost_metrics(uri, results)
    p50, p99 = (np.percentile(latencies, [50, 99]) if latencies.size else (float("nan"),) * 2)
    line = (f"N={n:3d}  steps/s {calls / wall:7.1f}  p50 {p50:7.1f} ms  p99 {p99:8.1f} ms  errors {errors:3d}  "
            f"lost {lost}  (wall {wall:.1f} s)")
    distinct = sorted({m for r in results for m in r["messages"]})
    return line + "".join(f"\n      error: {m}" for m in distinct[:3])


def mlflow_server(backend: str, folder: Path, workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
                             "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str(workers)],
                            stdout=open(folder / "server.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url)
    except TimeoutError:
        stop(proc)
        raise RuntimeError(f"mlflow server over {backend} did not start: "
                           f"{(folder / 'server.log').read_text()[-2000:]}") from None
    return proc, url


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        return
    proc.wait(timeout=30)


class Postgres:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (run as the `postgres` user when this is root)."""

    def __init__(self, folder: Path):
        self.folder, self.port = folder / "pg", free_port()
        self.bin = Path(next(Path("/usr/lib/postgresql").glob("*/bin")))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def run(self, *cmd: str) -> None:
        done = subprocess.run([*self.as_user, *cmd], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{' '.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")

    def __enter__(self) -> str:
        self.folder.mkdir()
        if self.as_user:
            shutil.chown(self.folder, "postgres")
            for parent in (self.folder.parent, self.folder.parent.parent):  # the postgres user walks in
                os.chmod(parent, 0o755)
        self.run(str(self.bin / "initdb"), "-D", str(self.folder), "-A", "trust", "-U", "postgres")
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.folder), "-l", str(self.folder / "log"), "-w", "-o",
                 f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c max_connections=300", "start")
        self.run(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "mlflow")
        return f"postgresql://postgres@127.0.0.1:{self.port}/mlflow"

    def __exit__(self, *exc) -> None:
        self.run(str(self.bin / "pg_ctl"), "-D", str(self.folder), "-m", "fast", "-w", "stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--steps", type=int, default=30, help="logging steps per simulated trial")
    parser.add_argument("--stores", nargs="+", default=["sqlite", "server-sqlite", "server-postgres"])
    parser.add_argument("--server-workers", type=int, default=1)
    args = parser.parse_args()
    print(f"tracking load: N trials x {args.steps} logging steps of {len(STEP_KEYS)} values, sfli Tracker "
          f"({os.cpu_count()} cores shared by clients and server)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for store in args.stores:
            print(f"[{store}]", flush=True)
            for n in args.n:
                folder = tmp / f"{store}-{n}"
                folder.mkdir()
                if store == "sqlite":
                    print("  " + measure(f"sqlite:///{folder / 'mlflow.db'}", n, args.steps), flush=True)
                    continue
                if store == "server-sqlite":
                    server, url = mlflow_server(f"sqlite:///{folder / 'server.db'}", folder, args.server_workers)
                    try:
                        print("  " + measure(url, n, args.steps), flush=True)
                    finally:
                        stop(server)
                    continue
                with Postgres(folder) as backend:
                    server, url = mlflow_server(backend, folder, args.server_workers)
                    try:
                        print("  " + measure(url, n, args.steps), flush=True)
                    finally:
                        stop(server)


if __name__ == "__main__":
    main()
