"""Search and evaluation paths beyond the quick start, in-process on the shared Ray instance: successive
halving (ASHA) in the search with a diverging arm in the evaluation, and a grid study whose every arm, each
SFLI layout and a searched layout knob among them, is tuned alike."""

from __future__ import annotations

import warnings

import optuna
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.runner import start_study
from sfli_core import keys
from tests.pipeline_helpers import ROOT, trial_runs, write_study


def test_asha_closes_every_search_run_and_a_diverging_arm_is_a_recorded_outcome(tmp_path, capsys, local_ray):
    study = write_study(tmp_path / "asha.yaml", "with_asha", {
        "xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"init.scale": {"type": "log_uniform", "low": 0.01, "high": 10.0}}},
        "blowup": {"set": {"init.name": "xavier_normal", "train.optimizer": "sgd", "train.lr": 1e6}},
    }, steps=200, log_every=10, seeds=[0], search_trials=6,
        search={"objective": keys.steps_to(1e-1), "trials": 6, "seeds": [1000],
                "asha": {"enabled": True, "grace_period": 2, "reduction_factor": 2}})
    runs = tmp_path / "runs"
    state = start_study(str(study), runs=str(runs))
    assert state.status == "finished"
    search = trial_runs(state.tracking_uri, "with_asha", "search")
    assert len(search) == 6
    statuses = [r.data.tags["status"] for r in search]
    assert "running" not in statuses and all(r.info.status != "RUNNING" for r in search)
    assert "stopped" in statuses  # ASHA cut at least one trial short …
    # … and the tuning audit says so: Optuna has the stopped trials as pruned, with their running objectives
    audit = optuna.load_study(study_name="with_asha-e1-sfli", storage=f"sqlite:///{runs / 'optuna.db'}")
    states = sorted(t.state.name for t in audit.get_trials())
    assert states == sorted("PRUNED" if s == "stopped" else "COMPLETE" for s in statuses), states
    assert all(t.intermediate_values for t in audit.get_trials() if t.state.name == "PRUNED")
    client = MlflowClient(state.tracking_uri)
    evaluate = {r.data.tags["arm"]: r for r in trial_runs(state.tracking_uri, "with_asha", "evaluate")}
    assert set(evaluate) == {"xavier", "sfli", "blowup"}
    for arm in ("xavier", "sfli"):  # … but never an evaluation run
        steps = [m.step for m in client.get_metric_history(evaluate[arm].info.run_id, keys.TRAIN_LOSS)]
        assert max(steps) == 200 and evaluate[arm].data.tags["status"] == "finished"
    assert evaluate["blowup"].data.tags["status"] == "diverged"  # recorded, and the study completed
    # the report of a study with a diverged arm shows it, and warns of no all-NaN slices
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["report", "with_asha", "--runs-dir", str(runs), "--no-figures"]) == 0
    assert "diverged 1" in capsys.readouterr().out
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)], [str(w.message) for w in caught]


def test_sfli_layouts_smoke_runs_every_layout_with_every_arm_tuned(tmp_path, capsys, local_ray):
    # plus the arm a cluster user adds (the study file says how): the layout searched as a choice knob
    spec = yaml.safe_load((ROOT / "studies" / "sfli_layouts.yaml").read_text())
    spec["arms"]["sfli_layout"] = {"set": {"init.name": "sfli"}, "search": {
        "init.params.layout": {"type": "choice", "values": ["random", "axis", "quasi_uniform"]},
        **spec["arms"]["sfli_quasi"]["search"]}}
    study = tmp_path / "sfli_layouts.yaml"
    study.write_text(yaml.safe_dump(spec, sort_keys=False))
    runs = str(tmp_path / "runs")
    assert start_study(str(study), smoke=True, runs=runs).status == "finished"
    capsys.readouterr()
    assert main(["report", "sfli_layouts", "--runs-dir", runs, "--no-figures"]) == 0
    out = capsys.readouterr().out
    for arm in ("sfli_random", "sfli_axis", "sfli_quasi", "sfli_layout"):
        assert f"xavier vs {arm}" in out  # each layout paired with tuned Xavier
    tuning = pd.read_csv(tmp_path / "runs" / "reports" / "sfli_layouts" / "tuning.csv").set_index("arm")
    # every arm tuned alike, the baseline included: its knobs, one trial of 20 steps, a chosen value per knob
    knobs = {arm: "init.scale, train.lr" for arm in ("xavier", "sfli_random", "sfli_axis", "sfli_quasi")}
    knobs["sfli_layout"] = "init.params.layout, init.scale, train.lr"
    assert tuning["tuned"].to_dict() == knobs
    assert set(tuning["trials"]) == {1} and set(tuning["pruned"]) == {0} and set(tuning["search_steps"]) == {20}
    assert set(tuning["trials_at_once"].astype(str)) == {"2"}  # the shared local instance's 2 CPUs, 1 per trial
    assert all(row.chosen.count("=") == len(knobs[arm].split(", ")) for arm, row in tuning.iterrows())
