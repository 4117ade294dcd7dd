"""Helpers of the kill → resume tests (test_interrupt_search.py, test_interrupt_packed.py): a driver subprocess
stopped by a signal once a condition holds, and a study read back from its runs folder and store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.runner import StudyState, resume_study
from pipelines.tracking import TRIAL_STARTS
from sfli_core import keys
from tests.pipeline_helpers import ROOT, stop_group, trial_runs, wait_for, write_study

ARMS = {"xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"init.scale": {"type": "log_uniform", "low": 0.5, "high": 2.0}}}}


@dataclass
class Driver:
    """A `sfli run` or `sfli resume` subprocess in its own process group (so that SIGINT reaches it as Ctrl-C
    would), its output in a log file."""

    proc: subprocess.Popen
    log: Path

    @classmethod
    def start(cls, tmp_path: Path, *args: str, env: dict | None = None) -> Driver:
        log = tmp_path / f"driver-{len(list(tmp_path.glob('driver-*.log')))}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], cwd=ROOT, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=True)
        return cls(proc, log)

    def output(self) -> str:
        return self.log.read_text()

    def stop(self, sig: int, when, what: str, every: float = 0.05, group: bool = False) -> int:
        """Send ``sig`` once ``when()`` holds, to the driver or (``group``) to its whole process group, as
        `timeout`, systemd and Kubernetes do; the driver's exit code (SIGKILL: -9)."""
        try:
            try:
                wait_for(when, timeout=300, every=every, what=what)
            except TimeoutError:
                raise AssertionError(self.output()[-4000:]) from None
            if group:
                os.killpg(self.proc.pid, sig)
            else:  # the driver only: after SIGKILL its Ray helpers live on, as after a crash
                os.kill(self.proc.pid, sig)
            return self.proc.wait(timeout=120)
        finally:
            if self.proc.poll() is None:
                stop_group(self.proc, signal.SIGKILL)


class Study:
    def __init__(self, tmp_path: Path, name: str, **spec):
        self.tmp_path, self.name = tmp_path, name
        self.file = write_study(tmp_path / f"{name}.yaml", name, ARMS, **spec)
        self.move_to(tmp_path / "runs")

    def move_to(self, runs: Path) -> None:
        """The study's runs folder is now ``runs`` (moved there, when it existed)."""
        if hasattr(self, "runs") and self.runs.exists():
            runs.parent.mkdir(parents=True, exist_ok=True)
            self.runs.rename(runs)
        self.runs = runs
        self.uri = f"sqlite:///{self.runs / 'mlflow.db'}"

    def state(self) -> dict | None:
        path = StudyState.path(self.runs, self.name)
        # the driver writes its state once the store exists: reading the store earlier would race its creation
        return json.loads(path.read_text()) if path.exists() else None

    def finished(self, phase: str) -> int:
        """Runs of the phase finished by now (read from the store, which its creator may still be creating)."""
        if self.state() is None:  # the driver writes its state once the store exists
            return 0
        try:
            return sum(r.data.tags["status"] == "finished" for r in trial_runs(self.uri, self.name, phase))
        except Exception:
            return 0

    def checkpoints(self, phase: str, since: float) -> list[int]:
        """Per trial of the phase, the checkpoints it wrote since ``since``. A training trial writes one every
        2 logging steps straight into the runs folder: live progress, read cheaply and often."""
        counts = [sum(c.stat().st_mtime >= since for c in trial.glob("checkpoint_*"))
                  for trial in (self.runs / "ray").glob(f"{self.name}-e1-{phase}*/*/")]
        return [n for n in counts if n]

    def finished_starts(self) -> dict[str, int]:
        """Run id → how many times its trial started, of every run finished by now."""
        client = MlflowClient(self.uri)
        return {r.info.run_id: len(client.get_metric_history(r.info.run_id, TRIAL_STARTS))
                for r in trial_runs(self.uri, self.name) if r.data.tags["status"] == "finished"}

    def stopped_gracefully(self, driver: Driver, code: int, phase: str, capsys) -> None:
        out = driver.output()
        assert code == 130, out[-3000:]  # as after Ctrl-C
        assert "interrupted" in out and f"sfli resume {self.name}" in out, out[-3000:]
        # Tune's own advice (its Python API) and its list of trials that never started are not for our users
        assert "Tuner.restore" not in out and "Failed to fetch metrics" not in out, out[-3000:]
        state = self.state()
        assert state["status"] == "interrupted" and "evaluate" not in state["done"]
        assert (phase == "evaluate") == any(k.startswith("search-") for k in state["done"])
        left = trial_runs(self.uri, self.name)  # nobody writes to them now: none stays "running"
        assert [(r.info.run_name, r.data.tags["status"], r.info.status) for r in left
                if r.data.tags["status"] == "running" or r.info.status == "RUNNING"] == []
        assert main(["status", self.name, "--runs-dir", str(self.runs)]) == 0
        out = capsys.readouterr().out
        assert f"{self.name}: interrupted" in out and f"sfli resume {self.name}" in out, out
        assert main(["run", str(self.file), "--runs-dir", str(self.runs)]) == 2  # not a new execution
        assert f"sfli resume {self.name}" in capsys.readouterr().err

    def resume_in_process(self, capsys) -> None:
        """`sfli resume` without its closing report (tested with the tracking server), on the shared Ray; the
        steps a resumed search trial reports again are not warned of."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert resume_study(self.name, runs=str(self.runs)).status == "finished"
        assert not [w for w in caught if "is already reported" in str(w.message)], [str(w.message) for w in caught]
        out = capsys.readouterr().out
        assert f"study '{self.name}' finished" in out, out[-3000:]

    def completed_once(self, finished_before: dict[str, int], steps: int, log_every: int, search: int,
                       evaluate: list[tuple[str, str]]) -> MlflowClient:
        """One run per trial, all finished; a run finished before an interruption never started again (as many
        starts now as then); every logging step of every run recorded exactly once."""
        client = MlflowClient(self.uri)
        search_runs, evaluate_runs = trial_runs(self.uri, self.name, "search"), trial_runs(self.uri, self.name,
                                                                                            "evaluate")
        assert len(search_runs) == search, [(r.data.tags["trial_id"], r.data.tags["status"]) for r in search_runs]
        assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in evaluate_runs) == sorted(evaluate)
        for run in search_runs + evaluate_runs:
            assert run.data.tags["status"] == "finished" and run.info.status == "FINISHED", run.info.run_name
            starts = client.get_metric_history(run.info.run_id, TRIAL_STARTS)
            if run.info.run_id in finished_before:
                assert len(starts) == finished_before[run.info.run_id], run.info.run_name  # never re-trained
            logged = [m.step for m in client.get_metric_history(run.info.run_id, keys.TRAIN_LOSS)]
            assert sorted(logged) == list(range(0, steps + 1, log_every)), run.info.run_name
        return client


PACKED_STEPS = 600


def packed_study(tmp_path: Path, name: str, pack) -> Study:
    study = Study(tmp_path, name, steps=PACKED_STEPS, seeds=[0, 1, 2], search_trials=2,
                  resources={"cpus": 1, "pack": pack})
    # float64, and a learning rate at which Adam has no loss spikes: a spike amplifies round-off (the
    # batched products' last bits) to ~1e-6 within 100 steps, which would hide what this test checks
    text = study.file.read_text().replace(f"steps: {PACKED_STEPS}", f"steps: {PACKED_STEPS}\n    dtype: float64\n"
                                                                    "    n_train: 128\n    lr: 3.0e-4")
    study.file.write_text(text.replace("- 1000\n", "- 1000\n  - 1001\n"))  # two search seeds: a search trial packs
    return study


def curves(uri: str, study: str) -> dict:
    """(phase, arm, seed or searched knob) → {metric: [(step, value)]} of every trial run (timings left out)."""
    client = MlflowClient(uri)
    out = {}
    for run in trial_runs(uri, study):
        tags = run.data.tags
        keys = [k for k in run.data.metrics if not k.startswith(("time/", "trial/", "target/seconds"))]
        if tags["phase"] == "search":
            key = ("search", tags["arm"], round(float(run.data.params["search.init.scale"]), 12)) \
                if "search.init.scale" in run.data.params else ("search", tags["arm"], tags["trial_id"])
        else:
            key = ("evaluate", tags["arm"], tags["seed"])
        assert key not in out, key  # exactly one run per member
        out[key] = {k: sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, k))
                    for k in keys}
    return out


def cmdline_has(pid: str, text: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False
