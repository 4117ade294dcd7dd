"""Report generation from a small MLflow store built here (real MLflow, SQLite)."""

from __future__ import annotations

import json

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from analysis.report import build_report
from pipelines.reporting import report

STEPS = [0, 100, 200, 300, 400]


def make_store(tmp_path) -> tuple[str, str]:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("toy", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, tags={"study": "toy", "phase": "evaluate", "role": "parent",
                                          "execution": "1"}).info.run_id
    # xavier reaches 1e-2 at step 400 (seeds 0-2) and never on seed 3; sfli always at 100: speed-up 4, and a
    # lower bound of 400/100 = 4 for the censored seed
    for arm, init, role, reach, rank, err in (("xavier", "xavier_normal", "baseline", 400, 1, 0.3),
                                              ("sfli", "sfli", "treatment", 100, 30, 0.03)):
        for seed in range(4):
            tags = {"study": "toy", "phase": "evaluate", "arm": arm, "variant": "base", "task": "fit1d_multiscale",
                    "arch": "mlp", "init": init, "comparison": role, "status": "finished", "role": "trial",
                    "execution": "1", "mlflow.parentRunId": parent}
            run_id = client.create_run(exp, tags=tags).info.run_id
            params = {"seed": seed, "train.steps": 400, "model.depth": 2, "meta.hidden_layers": 2, "model.width": 32,
                      "model.activation": "tanh", "rank.headline": 0.001, "targets.metric": "train/loss",
                      "targets.thresholds": json.dumps([0.01])}
            metrics = [Metric("final/eval/rel_l2", err * (1 + 0.1 * seed), 0, 400),
                       Metric("initial/rank/eps1e-3/layer1", rank, 0, 0),
                       Metric("initial/rank/eps1e-3/layer2", rank, 0, 0),
                       Metric("final/rank/eps1e-3/layer1", rank + 1, 0, 400),
                       Metric("final/rank/eps1e-3/layer2", rank + 2, 0, 400)]
            if arm == "sfli" or seed < 3:
                metrics += [Metric("target/steps_to_1e-2", reach, 0, 400),
                            Metric("target/seconds_to_1e-2", reach / 100, 0, 400)]
            for s in STEPS:
                metrics += [Metric("train/loss", 1.0 / (1 + s / reach), 0, s),
                            Metric("rank/eps1e-3/layer2", rank + (s >= reach), 0, s)]
            client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                             tags=[RunTag("seed", str(seed))])
            spectra = tmp_path / "spectra.json"
            spectra.write_text(json.dumps({"initial": [[1.0] * rank, [0.5] * rank],
                                           "final": [[1.0] * rank, [0.5] * (rank + 2)]}))
            client.log_artifact(run_id, str(spectra))
            client.set_terminated(run_id)
    return uri, parent


def test_report_tables_and_figures(tmp_path):
    uri, parent = make_store(tmp_path)
    out = tmp_path / "report"
    result = build_report(uri, ["toy"], out)
    row = result.speedup.iloc[0]
    assert (row["baseline"], row["treatment"], row["tau"]) == ("xavier", "sfli", 0.01)
    assert row["reached_base"] == "3 of 4" and row["reached_treat"] == "4 of 4"
    assert row["speedup_geomean"] == pytest.approx(4.0) and row["speedup_kind"] == "lower bound"
    assert row["censored_pairs"] == 1
    assert row["median_steps_base"] == 400 and row["median_steps_treat"] == 100
    assert (row["initial_rank_base"], row["initial_rank_treat"]) == (1, 30)
    assert row["final_rel_l2_treat"] < row["final_rel_l2_base"]
    for name in ("speedup.md", "speedup.csv", "speedup.tex", "layerwise.csv", "staircase.csv", "report.md",
                 "speedup_forest.png", "staircase_toy_fit1d_multiscale_mlp.png",
                 "initial_rank_toy_fit1d_multiscale_mlp.png", "spectra_toy_fit1d_multiscale_mlp.png"):
        assert (out / name).stat().st_size > 0, name
    assert "| toy | base | fit1d_multiscale | mlp | 0.01 | xavier | sfli | 3 of 4 | 4 of 4 |" in result.markdown
    assert "\\begin{tabular}" in (out / "speedup.tex").read_text()
    # neither arm of the toy study was searched, and the report says so
    assert "| toy | sfli | sfli | not tuned (fixed knobs) | 0 |" in result.markdown
    assert (out / "tuning.csv").stat().st_size > 0


def test_report_command_logs_files_to_the_parent_run(tmp_path):
    uri, parent = make_store(tmp_path)
    result = report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False)
    logged = {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")}
    assert "report/speedup.csv" in logged and "report/report.md" in logged
    assert "Paired speed-up" in result.markdown


def test_report_of_an_unknown_study_is_a_clear_error(tmp_path):
    from sfli_core.config import ConfigError

    uri, _ = make_store(tmp_path)
    with pytest.raises(ConfigError, match="no recorded study named nope"):
        report("nope", uri=uri, out=str(tmp_path / "out"))
