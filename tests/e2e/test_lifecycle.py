"""A study's life beyond one run: a finished study run again is a new execution (the old runs kept, reports
per execution), and two drivers that start at once on one fresh store both finish."""

from __future__ import annotations

import signal
import subprocess
import sys

from pipelines.cli import main
from pipelines.runner import start_study
from tests.pipeline_helpers import ROOT, stop_group, trial_runs, write_study

XAVIER = {"set": {"init.name": "xavier_normal"}}


def test_running_a_finished_study_again_is_a_new_execution(tmp_path, capsys, local_ray):
    study = write_study(tmp_path / "s.yaml", "again", {"xavier": XAVIER, "sfli": {"set": {"init.name": "sfli"}}},
                        seeds=[0])
    runs = str(tmp_path / "runs")
    assert start_study(str(study), runs=runs).execution == 1
    capsys.readouterr()
    second = start_study(str(study), runs=runs, overrides=["base.train.lr=3e-3"])
    assert second.status == "finished" and second.execution == 2
    assert "execution 2" in capsys.readouterr().out
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    runs_found = trial_runs(uri, "again", "evaluate")
    assert sorted((r.data.tags["execution"], r.data.tags["arm"]) for r in runs_found) == [
        ("1", "sfli"), ("1", "xavier"), ("2", "sfli"), ("2", "xavier")]  # trained again, old runs kept
    lrs = {r.data.tags["execution"]: r.data.params["train.lr"] for r in runs_found}
    assert lrs == {"1": "0.001", "2": "0.003"}
    assert main(["report", "again", "--runs-dir", runs, "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "execution 2" in out and "2 evaluation runs" in out  # the latest execution
    assert main(["report", "again", "--runs-dir", runs, "--no-figures", "--execution", "1"]) == 0
    assert "execution 1" in capsys.readouterr().out


def test_two_first_starts_on_one_fresh_store_both_finish(tmp_path):
    """Two driver processes create the same SQLite store at once (a file lock serialises its creation)."""
    runs = tmp_path / "runs"
    procs = []
    for name in ("first", "second"):
        study = write_study(tmp_path / f"{name}.yaml", name, {"xavier": XAVIER}, seeds=[0], steps=20)
        procs.append(subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", str(study), "--runs-dir",
                                       str(runs), "--num-cpus", "1"], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        outs = [p.communicate(timeout=400) for p in procs]
    finally:
        for p in procs:
            stop_group(p, signal.SIGKILL)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    assert len(trial_runs(uri, "first", "evaluate")) == len(trial_runs(uri, "second", "evaluate")) == 1
