"""The study's progress display (pipelines.progress) on trial records of the kind Ray Tune passes its callbacks:
counts, per-arm runs, the best final objective, and how often it speaks on a terminal and in a log; the pack-size
decisions printed beside it."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ray.tune.experiment import Trial

from pipelines import progress
from pipelines.progress import Progress, arm_counts
from pipelines.stop import StopRequest

NUMBERS = itertools.count()


@dataclass
class Seen:
    """What the callback reads of a Tune trial: its status, config and last result."""
    status: str
    config: dict
    last_result: dict = field(default_factory=dict)
    trial_id: str = field(default_factory=lambda: f"t{next(NUMBERS)}")


def final(objective: float) -> dict:
    return {"objective": objective, "objective_final": 1}


SEARCH = [Seen(Trial.TERMINATED, {"arm": "sfli"}, final(300.0)), Seen(Trial.TERMINATED, {"arm": "sfli"}, final(196.4)),
          Seen(Trial.TERMINATED, {"arm": "sfli"}, {"objective": 50.0, "objective_final": 0}),  # pruned at a rung
          Seen(Trial.RUNNING, {"arm": "sfli"}), Seen(Trial.PENDING, {"arm": "sfli"})]
EVALUATE = [Seen(Trial.TERMINATED, {"members": [["xavier", 0, 0], ["sfli", 0, 0]]}, final(150.0)),
            Seen(Trial.RUNNING, {"members": [["xavier", 0, 1], ["sfli", 0, 1], ["sfli", 0, 2]]})]


def test_counts_per_arm_follow_the_members_of_packed_trials():
    assert arm_counts(EVALUATE, {EVALUATE[0].trial_id}) == {"xavier": (1, 2), "sfli": (1, 3)}
    assert arm_counts(SEARCH, {t.trial_id for t in SEARCH[:3]}) == {"sfli": (3, 5)}


def test_summary_counts_pruned_trials_apart_and_the_best_final_objective_only():
    text = Progress("search sfli", expected=8, pruning=True, terminal=False).summary(SEARCH, with_time=False)
    # 3 more trials not yet created count as pending; the pruned trial's running objective is not a result
    assert text == "done 3 (pruned 1)  running 1  pending 4  errored 0  · best objective 196.4"


def test_a_trial_ended_without_its_result_is_stopped_not_pruned_after_a_stop_request_or_without_pruning(
        monkeypatch):
    """After Ctrl-C Tune ends the running trials without their final result: they continue on resume, so they
    are neither done nor pruned (a search without successive halving prunes nothing)."""
    plain = Progress("search sfli", expected=8, terminal=False)
    assert plain.summary(SEARCH, with_time=False) == ("done 2  stopped 1  running 1  pending 4  errored 0  "
                                                      "· best objective 196.4")
    halving = Progress("search sfli", expected=8, pruning=True, terminal=True)
    halving.on_step_end(0, SEARCH[:3])  # the third trial was pruned before Ctrl-C …
    monkeypatch.setattr(StopRequest, "requested", True)
    after = SEARCH + [Seen(Trial.TERMINATED, {"arm": "sfli"}, {"objective": 80.0, "objective_final": 0})]
    # … the one ended without its result after it was stopped
    assert halving.summary(after, with_time=False, short=True) == ("run 1 wait 3 err 0 pruned 1 stopped 1  "
                                                                   "· best 196.4")
    assert arm_counts(after, {t.trial_id for t in halving.ended(after)["done"]}) == {"sfli": (3, 6)}
    late = Progress("search sfli", expected=8, pruning=True, terminal=True)  # saw nothing before the stop
    assert late.summary(SEARCH, with_time=False, short=True) == "run 1 wait 4 err 0 stopped 1  · best 196.4"
    both = Progress("evaluate", expected=2, terminal=False, searching=False).summary(EVALUATE, with_time=False)
    assert both.endswith("· sfli 1/3 xavier 1/2")  # an evaluation's trials are arms and grid points: no best


def test_a_log_gets_a_line_per_phase_change_and_at_most_one_a_minute(capsys, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: clock[0])
    monkeypatch.setattr(Progress, "t0", 990.0)
    shown = Progress("search sfli", expected=5, pruning=True, terminal=False)
    shown.setup()
    shown.on_step_end(0, SEARCH[3:])  # a new phase's first step: nothing done yet
    for _ in range(100):  # a step every 0.5 s for 50 s: no line
        clock[0] += 0.5
        shown.on_step_end(0, SEARCH)
    clock[0] += 10.5  # a minute since the start
    shown.on_step_end(0, SEARCH)
    shown.on_trial_complete(0, SEARCH, SEARCH[0])  # a log says nothing per trial
    shown.on_experiment_end(SEARCH)
    lines = capsys.readouterr().out.replace("\n    ", " ").splitlines()  # a line wrapped at 120 columns, read whole
    assert lines[0] == "[search sfli] 5 trials"
    assert len(lines) == 3 and all(line.startswith("[search sfli] done 3 (pruned 1)") for line in lines[1:])
    # the study started 10 s before the phase; 3 of 5 done in 60.5 s: 2 more take about 40 s
    assert "elapsed 70 s, about 40 s left in this phase" in lines[1]


def test_a_resumed_phase_shows_this_drivers_elapsed_time_and_pace(capsys, monkeypatch):
    """Tune restores a resumed phase's callback from its pickle: the first driver's clock and the trials done
    before the stop must not count. Here the first driver ran 100 s and finished 2 of 6 trials; the study lay
    stopped for an hour; the second driver starts at 5000 s, takes the phase on 10 s later, and finishes one
    more trial in 30 s: 3 left take about 90 s (not 3 × 3 700 / 3 s)."""
    import pickle

    clock = [1000.0]
    monkeypatch.setattr(progress.time, "time", lambda: clock[0])
    monkeypatch.setattr(Progress, "t0", 990.0)
    first = Progress("evaluate", expected=6, terminal=False, searching=False)
    first.setup()
    clock[0] = 1100.0
    trials = [Seen(Trial.TERMINATED, {"members": [["sfli", 0, s]]}, final(1.0)) for s in range(2)] + [
        Seen(Trial.RUNNING, {"members": [["sfli", 0, s]]}) for s in range(2, 4)] + [
        Seen(Trial.PENDING, {"members": [["sfli", 0, s]]}) for s in range(4, 6)]
    first.on_step_end(0, trials)
    saved = pickle.dumps(first)
    clock[0] = 5010.0
    monkeypatch.setattr(Progress, "t0", 5000.0)  # the second driver, set before the phase
    resumed = pickle.loads(saved)
    resumed.setup()
    resumed.on_step_end(0, trials)
    clock[0] = 5040.0
    trials[2].status, trials[2].last_result = Trial.TERMINATED, final(1.0)
    text = resumed.summary(trials, with_time=True)
    assert text.endswith("· elapsed 40 s, about 90 s left in this phase")
    on_terminal = pickle.loads(saved)
    on_terminal.terminal = True
    on_terminal.setup()
    on_terminal.on_step_end(0, trials)
    assert on_terminal.bar.initial == 3  # the bar's rate, and so its time left, counts this driver's trials
    on_terminal.on_experiment_end(trials)
    capsys.readouterr()


def test_a_terminal_gets_one_bar_redrawn_in_place(capsys):
    bar = Progress("evaluate", expected=2, terminal=True, searching=False)
    bar.setup()
    bar.show(EVALUATE)
    bar.on_experiment_end(EVALUATE)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\r" in out  # redrawn on one line, left on screen at the end
    last = out.rstrip("\n").split("\r")[-1]
    assert last.startswith("[evaluate] ") and " 1/2 trials " in last
    assert last.endswith("<00:00, run 1 wait 0 err 0  · sfli 1/3 xavier 1/2") and len(last) <= 120


def test_the_callback_pickles_as_tune_saves_it_with_its_bar_left_out(capsys):
    import pickle

    import cloudpickle

    bar = Progress("evaluate", expected=2, terminal=True)
    bar.setup()
    for dumps in (pickle.dumps, cloudpickle.dumps):  # under pytest, sys.stdout is a capture object
        copy = pickle.loads(dumps(bar))
        assert copy.bar is None and copy.expected == 2 and copy.terminal
    bar.on_experiment_end(EVALUATE)


def test_decisions_name_each_grid_point_once_and_read_at_120_columns(capsys):
    from pipelines.packing import group_name
    from pipelines.study import Cell
    from pipelines.terminal import say

    point = "helmholtz2d_a1-4_k1-modified_mlp"
    assert group_name([Cell("xavier", 0, point), Cell("sfli", 0, point), Cell("sfli", 1, "poisson2d-mlp")]) == \
        "helmholtz2d_a1-4_k1-modified_mlp (xavier, sfli); poisson2d-mlp (sfli)"
    assert group_name([Cell("sfli", 0, "base"), Cell("xavier", 0, "base")]) == "sfli, xavier"
    line = (f"[evaluate] {point} (xavier, sfli): 4 runs in packs of up to 1 (auto; model-steps/s by pack size: "
            "1: 56, 2: 60 (a run alone timed uncompiled; compiled, it is faster still))")
    say(line)
    say("[evaluate] sfli, xavier: 6 runs in packs of up to 3 (pack: 3)")
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(len(text) <= 120 for text in lines)
    assert lines[1].startswith("    ") and " ".join(t.strip() for t in lines[:2]) == line
    assert lines[2] == "[evaluate] sfli, xavier: 6 runs in packs of up to 3 (pack: 3)"
    uri = "sqlite:///" + "/deep" * 30 + "/mlflow.db"  # a word longer than a line stays whole, on a line of its own
    say(f"\nstudy 's' finished in 3 s (execution 1).\n  runs: MLflow experiment 's' at {uri}\n  open them: sfli ui")
    assert capsys.readouterr().out.splitlines() == [
        "", "study 's' finished in 3 s (execution 1).", "  runs: MLflow experiment 's' at", f"      {uri}",
        "  open them: sfli ui"]
