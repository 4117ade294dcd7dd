"""Packed trials through the whole pipeline: a study with `resources.pack` records exactly what the same study
with `pack: 1` records — one MLflow run per member, the same curves — also when its driver is killed in the
middle of the evaluation and the study is resumed."""

from __future__ import annotations

import signal
import subprocess
import sys

from mlflow.tracking import MlflowClient

from pipelines.runner import StudyState
from tests.pipeline_helpers import ROOT, sfli_cli, stop_group, trial_runs, wait_for, write_study

ARMS = {
    "xavier": {"set": {"init.name": "xavier_normal"}},
    "sfli": {"set": {"init.name": "sfli"}, "search": {"init.scale": {"type": "log_uniform", "low": 0.5, "high": 2.0}}},
}
STEPS = 1200


def study_file(tmp_path, name: str, pack) -> str:
    path = write_study(tmp_path / f"{name}.yaml", name, ARMS, steps=STEPS, log_every=20, seeds=[0, 1, 2],
                       search_trials=2, resources={"cpus": 1, "pack": pack})
    # float64, and a learning rate at which Adam has no loss spikes: a spike amplifies round-off (the
    # batched products' last bits) to ~1e-6 within 100 steps, which would hide what this test checks
    text = path.read_text().replace("steps: 1200", "steps: 1200\n    dtype: float64\n    n_train: 128\n    lr: 3.0e-4")
    text = text.replace("- 1000\n", "- 1000\n  - 1001\n")  # two search seeds: a search trial packs them
    path.write_text(text)
    return str(path)


def curves(uri: str, study: str) -> dict:
    """(phase, arm, seed) → {metric: [(step, value)]} of every trial run (timings left out)."""
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


def test_packed_study_killed_and_resumed_records_what_the_unpacked_study_records(tmp_path):
    runs = tmp_path / "runs"
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    solo = sfli_cli("run", study_file(tmp_path, "unpacked", 1), "--runs-dir", str(runs), "--num-cpus", "2",
                    timeout=900)
    assert solo.returncode == 0, solo.stdout[-3000:] + solo.stderr[-3000:]

    log = open(tmp_path / "driver.log", "w")  # noqa: SIM115 - closed below, read on failure
    driver = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "run", study_file(tmp_path, "packed", 3),
                               "--runs-dir", str(runs), "--num-cpus", "2"], cwd=ROOT, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def evaluate_half_way():
            if not StudyState.path(runs, "packed").exists():
                return None
            client = MlflowClient(uri)
            for run in trial_runs(uri, "packed", "evaluate"):
                steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
                if steps and STEPS // 4 <= max(steps) < STEPS // 2:
                    return True
            return None

        try:
            wait_for(evaluate_half_way, timeout=600, every=0.3, what="an evaluate pack a quarter of the way")
        except TimeoutError:
            raise AssertionError((tmp_path / "driver.log").read_text()[-4000:]) from None
    finally:
        stop_group(driver, signal.SIGKILL)
        log.close()
    printed = (tmp_path / "driver.log").read_text()
    assert "[search sfli] search seeds in packs of 2 (pack: 3)" in printed
    assert "sfli, xavier: 6 runs in packs of up to 3 (pack: 3)" in printed

    resumed = sfli_cli("resume", "packed", "--runs-dir", str(runs), "--num-cpus", "2", timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    client = MlflowClient(uri)
    evaluate = trial_runs(uri, "packed", "evaluate")
    assert len(evaluate) == 6 and len({r.data.tags["trial_id"] for r in evaluate}) == 2  # 2 trials of 3 runs
    assert {r.data.params["pack.size"] for r in evaluate} == {"3"}
    restarted = [r for r in evaluate if len(client.get_metric_history(r.info.run_id, "trial/starts")) > 1]
    assert restarted  # the killed pack continued in the same runs …
    for run in evaluate:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
        assert sorted(steps) == list(range(0, STEPS + 1, 20)), run.info.run_name  # … logging each step once

    packed, unpacked = curves(uri, "packed"), curves(uri, "unpacked")
    assert packed.keys() == unpacked.keys()
    for key, metrics in unpacked.items():
        assert packed[key].keys() == metrics.keys(), key
        for name, points in metrics.items():
            for (s1, v1), (s2, v2) in zip(points, packed[key][name], strict=True):
                assert s1 == s2 and abs(v1 - v2) <= 1e-10 * max(abs(v1), 1e-12), (key, name, s1, v1, v2)
