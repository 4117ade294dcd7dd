"""Every study file validates; the quickstart smoke profile runs end to end through the CLI and prints the
report; `sfli ui` serves the default store on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml
from mlflow.tracking import MlflowClient

from pipelines.study import load_study
from tests.pipeline_helpers import ROOT, free_port, healthy, parent_runs, sfli_cli, stop_group, trial_runs, wait_for

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
    assert "[search xavier] done" in out and "[search sfli] done" in out and "[evaluate] done" in out
    # the compact headline table, one line per (grid point, τ), no wider than a 120-column terminal
    table = out[out.index("grid point"):out.index("Full tables")].strip().splitlines()
    assert table[0].split() == ["grid", "point", "τ", "arms", "reached", "b", "t", "speed-up,", "95", "%", "error",
                                "ratio,", "95", "%", "p", "adj"]
    assert [line.split()[:6] for line in table[1:]] == [
        ["fit1d_multiscale", "mlp", tau, "xavier", "vs", "sfli"] for tau in ("1e-2", "1e-3")]
    assert max(len(line) for line in table) <= 120
    reports = tmp_path / "runs" / "reports" / "quickstart"
    assert (reports / "speedup.csv").exists() and (reports / "report.html").stat().st_size > 100_000
    status = sfli_cli("status", "quickstart", "--runs-dir", str(tmp_path / "runs"), timeout=120)
    assert "quickstart: finished" in status.stdout and "evaluate: 4/4 runs finished 4" in status.stdout
    # what the MLflow UI shows: the study's description on a model-training experiment; the evaluate parent
    # run with the chosen knobs, the report (v1) and its headline statistics; initial ranks at step 0
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("quickstart")
    assert experiment.tags["mlflow.note.content"].startswith("Xavier against SFLI on the 1-D multiscale fit")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    parent = parent_runs(uri, "quickstart")["evaluate"]
    assert set(parent.data.params) == {f"chosen.{arm}.{k}" for arm in ("xavier", "sfli") for k in ("init.scale",
                                                                                                     "train.lr")}
    assert {a.path for a in client.list_artifacts(parent.info.run_id, "report")} == {"report/v1"}
    assert "result/base/xavier-vs-sfli/tau1e-2/pairs" in parent.data.metrics
    assert "| fit1d_multiscale mlp | 0.01 | xavier vs sfli |" in parent.data.tags["mlflow.note.content"]
    child = trial_runs(uri, "quickstart", "evaluate")[0]
    assert child.info.run_name in {f"{arm}-seed{seed}" for arm in ("xavier", "sfli") for seed in (0, 1)}
    assert [m.step for m in client.get_metric_history(child.info.run_id, "initial/rank/eps1e-3/layer1")] == [0]
    ui_shows_the_runs(tmp_path / "runs", experiment.experiment_id)


def ui_shows_the_runs(runs, experiment_id: str) -> None:
    """`sfli ui` prints the study's URL; headless Chromium, given it, renders the runs table with the parent
    runs (needs Debian's chromium: skipped, and said so, where it is not installed)."""
    if shutil.which("chromium") is None:
        pytest.skip("chromium not installed: the UI was checked up to its URL, not rendered")
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--runs-dir", str(runs), "--port", str(port)],
                          cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          text=True, start_new_session=True)
    try:
        lines = [ui.stdout.readline() for _ in range(2)]
        url = lines[1].split(": ", 1)[1].strip()
        assert url == f"http://127.0.0.1:{port}/#/experiments/{experiment_id}?workflowType=machine_learning"
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), timeout=120, what="sfli ui")
        with tempfile.TemporaryDirectory() as profile:
            dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                                  "--no-first-run", "--disable-background-networking", "--disable-component-update",
                                  "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                                  "--dump-dom", url], capture_output=True, text=True, timeout=180).stdout
        assert "Run Name" in dom and "quickstart-evaluate" in dom and "quickstart-search" in dom
    finally:
        stop_group(ui)


def test_ui_serves_the_default_store_on_loopback(tmp_path):
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "ui", "--runs-dir", str(tmp_path), "--port",
                           str(port)], cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: healthy(f"http://127.0.0.1:{port}"), timeout=120, what="sfli ui")
    finally:
        stop_group(ui)


def test_sfli_layouts_smoke_runs_every_layout_with_every_arm_tuned(tmp_path):
    # plus the arm a cluster user adds (the study file says how): the layout searched as a choice knob
    spec = yaml.safe_load((ROOT / "studies" / "sfli_layouts.yaml").read_text())
    spec["arms"]["sfli_layout"] = {"set": {"init.name": "sfli"}, "search": {
        "init.params.layout": {"type": "choice", "values": ["random", "axis", "quasi_uniform"]},
        **spec["arms"]["sfli_quasi"]["search"]}}
    study = tmp_path / "sfli_layouts.yaml"
    study.write_text(yaml.safe_dump(spec, sort_keys=False))
    proc = sfli_cli("run", str(study), "--smoke", "--runs-dir", str(tmp_path / "runs"), "--num-cpus", "2",
                    timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    for arm in ("sfli_random", "sfli_axis", "sfli_quasi", "sfli_layout"):
        assert f"xavier vs {arm}" in out  # each layout paired with tuned Xavier
    report = (tmp_path / "runs" / "reports" / "sfli_layouts" / "report.md").read_text()
    assert "| sfli_layouts | xavier | xavier_normal | init.scale, train.lr | 1 |" in report  # the baseline was tuned
    assert "| sfli_layouts | sfli_quasi | sfli | init.scale, train.lr | 1 |" in report  # every arm alike
    assert "| sfli_layouts | sfli_layout | sfli | init.params.layout, init.scale, train.lr | 1 |" in report


def test_results_page_is_regenerated_from_recorded_studies(tmp_path):
    runs = str(tmp_path / "runs")
    for study in ("condensation", "staircase"):
        proc = sfli_cli("run", f"studies/{study}.yaml", "--smoke", "--runs-dir", runs, "--num-cpus", "2",
                        timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = tmp_path / "docs" / "results.md"
    first = sfli_cli("results", "--runs-dir", runs, "--out", str(page), timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    text = page.read_text()
    claims = text[text.index("## The papers' claims"):text.index("## Commands and wall times")]
    rows = [line for line in claims.splitlines() if line.startswith("| ") and "verdict" not in line]
    assert len(rows) == 13
    verdicts = {line.split(" | ")[2] for line in rows}
    assert verdicts <= {"reproduced", "partly", "not reproduced", "not testable here", "not tested here"}
    condensed = next(line for line in rows if "2p orientations" in line)
    assert "in the initial stage" in condensed and "not tested here" not in condensed
    command = next(line for line in text.splitlines() if line.startswith("| sfli run studies/condensation.yaml |"))
    assert "| 1 | 7 | 1 | 20 | none (fixed knobs) | 7 evaluate |" in command  # grid points, arms, seeds, …
    assert "Seeds above 2p under other clustering conventions" in text
    for link in (line[line.index("](") + 2:-1] for line in text.splitlines() if line.startswith("![")):
        assert (page.parent / link).exists(), link
    again = sfli_cli("results", "--runs-dir", runs, "--out", str(page), timeout=900)
    assert again.returncode == 0 and page.read_text() == text  # the same runs give the same page
