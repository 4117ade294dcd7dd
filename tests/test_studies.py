"""Every study file validates; the quickstart smoke profile runs end to end through the CLI and prints the
report; `sfli ui` serves the default store on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request

import pytest

from pipelines.study import load_study
from tests.pipeline_helpers import ROOT, free_port, sfli_cli, stop_group, wait_for

STUDIES = sorted((ROOT / "studies").glob("*.yaml"))


def test_the_study_files_of_the_issue_exist():
    assert {p.stem for p in STUDIES} >= {"quickstart", "function_fitting", "pinn_suite", "staircase", "condensation"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("smoke", [False, True])
def test_every_study_validates(path, smoke):
    study = load_study(path, smoke=smoke)
    assert study.name == path.stem
    assert study.variants()  # every grid point resolves to a valid run configuration (checked on load)


def test_smoke_profiles_are_smaller():
    for path in STUDIES:
        full, smoke = load_study(path), load_study(path, smoke=True)
        arm = next(iter(full.arms))
        assert smoke.run_config(arm).train.steps <= full.run_config(arm).train.steps
        assert len(smoke.variants()) * len(smoke.evaluate.seeds) <= len(full.variants()) * len(full.evaluate.seeds)


def test_quickstart_smoke_runs_end_to_end_and_prints_the_table(tmp_path):
    proc = sfli_cli("run", "studies/quickstart.yaml", "--smoke", "--runs-dir", str(tmp_path / "runs"),
                    "--num-cpus", "2", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "[search sfli] done" in out and "[evaluate] done" in out  # progress a person can follow
    assert "## Paired speed-up" in out
    assert "| quickstart | base | fit1d_multiscale | mlp | 0.01 | xavier | sfli |" in out
    assert (tmp_path / "runs" / "reports" / "quickstart" / "speedup.csv").exists()
    status = sfli_cli("status", "quickstart", "--runs-dir", str(tmp_path / "runs"), timeout=120)
    assert "quickstart: finished" in status.stdout and "evaluate: 4/4 runs finished 4" in status.stdout


def test_ui_serves_the_default_store_on_loopback(tmp_path):
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--runs-dir", str(tmp_path), "--port",
                           str(port)], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def health():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_for(health, timeout=120, what="sfli ui")
    finally:
        stop_group(ui)


def test_sfli_layouts_smoke_runs_every_layout_with_every_arm_tuned(tmp_path):
    proc = sfli_cli("run", "studies/sfli_layouts.yaml", "--smoke", "--runs-dir", str(tmp_path / "runs"),
                    "--num-cpus", "2", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for arm in ("sfli_random", "sfli_axis", "sfli_quasi", "sfli_layout"):
        assert f"| xavier | {arm} |" in out  # each layout paired with tuned Xavier
    assert "| sfli_layouts | xavier | xavier_normal | init.scale, train.lr | 1 |" in out  # the baseline was tuned
    assert "| sfli_layouts | sfli_layout | sfli | init.params.layout, init.scale, train.lr | 1 |" in out
