"""Trial runs' preview figures, drawn by the driver from what each run recorded (pipelines.previews,
pipelines.run_figures), on a real MLflow SQLite store: the staircase plot shows the first seed's loss and every
layer's ε-rank through the steps it was measured at; complete runs (finished, diverged) get their previews once,
runs still running or stopped none; a run whose records cannot be drawn is tagged why and the others are drawn;
the painter's thread draws runs as they end, and what is left when the phases end, but not after a stop."""

from __future__ import annotations

import json
import math
import time

import pandas as pd
import pytest
import yaml

from pipelines import previews
from pipelines.previews import PreviewPainter, draws_in_trials
from pipelines.run_figures import staircase_figure
from pipelines.tracking import Tracker
from sfli_core import keys, record
from sfli_core.config import RunConfig
from sfli_core.record import OUTCOMES, PreviewState, Status, TrialIdentity
from tests.pipeline_helpers import wait_for

STUDY = "previews"
L1, L2 = keys.rank_key(1e-3, 1), keys.rank_key(1e-3, 2)


def series(loss_seed7: list[float]) -> pd.DataFrame:
    """Two seeds' logged rows; ranks measured at steps 0 and 20 only (NaN at step 10, as a CSV reads back)."""
    rows = []
    for seed, losses in ((7, loss_seed7), (8, [5.0, 0.5, 0.05])):
        for step, loss, r1, r2 in zip((0, 10, 20), losses, (3, math.nan, 5), (2, math.nan, 4)):
            rows.append({"seed": seed, keys.STEP: step, keys.TRAIN_LOSS: loss, L1: r1 + seed - 7, L2: r2})
    return pd.DataFrame(rows)


def test_the_staircase_shows_the_loss_and_each_layers_rank_where_it_was_measured():
    fig = staircase_figure(series([1.0, 0.1, 0.01])[lambda s: s["seed"] == 7], 1e-3, "t")
    loss_axis, rank_axis = fig.axes
    (loss,) = loss_axis.get_lines()
    assert list(loss.get_xdata()) == [0, 10, 20] and list(loss.get_ydata()) == [1.0, 0.1, 0.01]
    assert loss_axis.get_yscale() == "log"
    ranks = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in rank_axis.get_lines()}
    assert ranks == {"layer 1": ([0, 20], [3, 5]), "layer 2": ([0, 20], [2, 4])}
    assert all(line.get_drawstyle() == "steps-post" for line in rank_axis.get_lines())


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One store for the module (its creation takes seconds); each test writes an execution of its own."""
    folder = tmp_path_factory.mktemp("store")
    tracker = Tracker(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = tracker.experiment(STUDY, folder / "artifacts")
    return tracker, experiment, tracker.parent_run(experiment, STUDY, "evaluate", 1)


def painter(store, execution: int) -> PreviewPainter:
    return PreviewPainter(store[0].uri, store[1], STUDY, execution)


def add_run(store, tmp_path, name: str, status: Status, execution: int, losses=(1.0, 0.1, 0.01),
            weights: bool = True, closed: bool = True) -> str:
    """A trial run with the records a trial leaves (config and series; the first layer's weights optionally)."""
    tracker, experiment, parent = store
    identity = TrialIdentity(study=STUDY, execution=execution, phase="evaluate", arm="xavier", variant="base",
                             trial_id=name, seeds=(7,), task="fit1d_multiscale", init="xavier_normal", arch="mlp",
                             init_role="baseline")
    run_id, _ = tracker.child_run(experiment, parent, name, identity, {"train.lr": 0.01})
    folder = tmp_path / name
    folder.mkdir()
    (folder / record.CONFIG_FILE).write_text(yaml.safe_dump(RunConfig.model_validate({"seed": 7}).model_dump(
        mode="json")))
    series(list(losses)).to_csv(folder / record.SERIES_FILE, index=False)
    if weights:
        u0 = [[1.0, 0.2], [-0.3, 0.9], [0.5, -0.5], [0.1, 0.1]]
        u1 = [[1.0, 0.0], [2.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]
        (folder / record.WEIGHTS_FILE).write_text(json.dumps({record.WEIGHTS_START: u0, record.WEIGHTS_END: u1}))
    tracker.log_artifacts(run_id, folder)
    if closed:  # as the trial closes it
        tracker.finish(run_id, status, {record.PREVIEWS: PreviewState.PENDING} if status in OUTCOMES else None)
    else:
        tracker.set_tags(run_id, {record.STATUS: status})
    return run_id


def artifacts(store, run_id: str) -> set[str]:
    return {a.path for a in store[0].client.list_artifacts(run_id)}


def tag(store, run_id: str, key: str = record.PREVIEWS) -> str | None:
    return store[0].client.get_run(run_id).data.tags.get(key)


def test_complete_runs_get_their_previews_once_and_others_none(store, tmp_path):
    finished = add_run(store, tmp_path, "finished", Status.FINISHED, 1)
    diverged = add_run(store, tmp_path, "diverged", Status.DIVERGED, 1, losses=(1.0, math.inf, math.nan),
                       weights=False)
    running = add_run(store, tmp_path, "running", Status.RUNNING, 1, closed=False)
    stopped = add_run(store, tmp_path, "stopped", Status.STOPPED, 1)
    first = painter(store, 1)
    assert first.sweep() == 2
    recorded = {record.CONFIG_FILE, record.SERIES_FILE}
    assert artifacts(store, finished) == recorded | {record.WEIGHTS_FILE, record.STAIRCASE_FILE, record.HEATMAP_FILE}
    assert artifacts(store, diverged) == recorded | {record.STAIRCASE_FILE}
    assert artifacts(store, running) == artifacts(store, stopped) == recorded | {record.WEIGHTS_FILE}
    assert [tag(store, r) for r in (finished, diverged, running, stopped)] == ["drawn", "drawn", None, None]
    assert first.sweep() == 0
    assert painter(store, 1).sweep() == 0  # another driver (a resumed study) draws no run that has its previews
    assert painter(store, 99).sweep() == 0  # nor another execution's


def test_a_run_whose_records_cannot_be_drawn_is_tagged_why_and_the_others_are_drawn(store, tmp_path, capsys):
    broken = add_run(store, tmp_path, "broken", Status.FINISHED, 2)
    (tmp_path / "broken" / record.SERIES_FILE).write_text("seed,step\n7,0\n")  # no loss column
    store[0].log_artifacts(broken, tmp_path / "broken")
    fine = add_run(store, tmp_path, "fine", Status.FINISHED, 2)
    assert painter(store, 2).sweep() == 2
    assert tag(store, broken) == "not drawn" and tag(store, fine) == "drawn"
    assert tag(store, broken, record.PREVIEWS_ERROR) == f"KeyError: '{keys.TRAIN_LOSS}'"
    assert record.STAIRCASE_FILE not in artifacts(store, broken)
    assert f"previews of run broken: not drawn (KeyError: '{keys.TRAIN_LOSS}')" in capsys.readouterr().out
    assert painter(store, 2).sweep() == 0  # tried once


def test_the_painter_draws_runs_as_they_end_and_the_rest_when_the_phases_end(store, tmp_path, monkeypatch):
    monkeypatch.setattr(previews, "POLL_S", 0.1)
    with painter(store, 3):
        early = add_run(store, tmp_path, "early", Status.FINISHED, 3)
        wait_for(lambda: tag(store, early) == "drawn", timeout=30, every=0.1, what="a look")
        later = add_run(store, tmp_path, "later", Status.FINISHED, 3)
        wait_for(lambda: tag(store, later) == "drawn", timeout=30, every=0.1, what="a later look")
        monkeypatch.setattr(previews, "POLL_S", 3600.0)  # from its next wait on, only the end draws
        time.sleep(0.5)  # the thread is in that wait
        last = add_run(store, tmp_path, "last", Status.FINISHED, 3)
        assert tag(store, last) == "pending"
    assert tag(store, last) == "drawn" and record.HEATMAP_FILE in artifacts(store, last)


def test_a_stopped_study_leaves_the_rest_to_its_resume(store, tmp_path, monkeypatch):
    monkeypatch.setattr(previews, "POLL_S", 3600.0)
    with pytest.raises(KeyboardInterrupt), painter(store, 4):
        left = add_run(store, tmp_path, "left", Status.FINISHED, 4)
        raise KeyboardInterrupt
    assert tag(store, left) == "pending"
    with painter(store, 4):  # the resumed driver's
        pass
    assert tag(store, left) == "drawn"


def test_trials_draw_their_own_previews_only_where_the_driver_has_no_core_of_its_own():
    assert draws_in_trials(None, 0.0, ray_cpus=2, machine_cpus=2)  # a local Ray instance on every core
    assert not draws_in_trials(None, 0.0, ray_cpus=1, machine_cpus=2)  # --num-cpus 1: a core left to the driver
    assert not draws_in_trials("127.0.0.1:6379", 0.0, ray_cpus=2, machine_cpus=2)  # a cluster's trials
    assert not draws_in_trials(None, 1.0, ray_cpus=2, machine_cpus=2)  # an accelerator never waits for a figure
