"""Restoring a phase: the knobs a search chooses do not depend on the order in which Tune returns its trials
(an interrupted and resumed search chooses what an uninterrupted one does), a saved Tune state cut short is
recognised, and Tune's own words on stopping and restoring (its API, never-started trials) are left out."""

from __future__ import annotations

import itertools

from pipelines.phases import choose


def _trial(number: int, objective: float, scale: float) -> tuple[dict, dict]:
    return ({"objective": objective, "experiment_tag": f"{number}_init.scale={scale}"},
            {"arm": "sfli", "point": 0, "init.scale": scale})


TRIALS = [_trial(0, 200.0, 0.7), _trial(1, 180.0, 1.3), _trial(2, 250.0, 0.2), _trial(3, 180.0, 0.9),
          _trial(4, 180.0, 1.1)]


def test_ties_go_to_the_earliest_trial_whatever_the_order():
    chosen = {str(choose(list(order))) for order in itertools.permutations(TRIALS)}
    assert chosen == {str({"init.scale": 1.3})}  # trial 1: the earliest of the three at 180


def test_the_lowest_objective_wins_over_trial_order():
    assert choose([_trial(0, 3.0, 0.5), _trial(7, 2.5, 2.0)]) == {"init.scale": 2.0}


def test_without_trial_numbers_the_knobs_break_ties():
    untagged = [({"objective": 1.0}, {"arm": "a", "point": 0, "train.lr": lr}) for lr in (0.01, 0.001, 0.1)]
    assert {str(choose(list(order))) for order in itertools.permutations(untagged)} == {str({"train.lr": 0.001})}


def test_a_tune_state_cut_short_is_recognised(tmp_path):
    """A full disk or a kill leaves a state file empty or half-written; a resumed phase then sets the saved
    experiment aside and starts again instead of failing on a decoding error."""
    from pipelines.phases import damaged_tune_state

    (tmp_path / "tuner.pkl").write_bytes(b"\x80\x04pickled")
    (tmp_path / "experiment_state-2026-12-02_00-00-00.json").write_text('{"trial_data": []}')
    (tmp_path / "basic-variant-state-2026-12-02_00-00-00.json").write_bytes(b"\x80\x04 a pickle, named .json")
    (tmp_path / "run_trial_1").mkdir()
    (tmp_path / "run_trial_1" / "result.json").write_text("")  # a trial's own files are not the state
    assert damaged_tune_state(tmp_path) is None
    (tmp_path / "experiment_state-2026-12-02_00-01-00.json").write_text('{"trial_data": [')
    assert "experiment_state-2026-12-02_00-01-00.json is damaged" in damaged_tune_state(tmp_path)
    (tmp_path / "experiment_state-2026-12-02_00-01-00.json").unlink()
    (tmp_path / "searcher-state-2026-12-02_00-00-00.pkl").write_bytes(b"")
    assert damaged_tune_state(tmp_path) == "searcher-state-2026-12-02_00-00-00.pkl is empty"


def test_tunes_words_on_a_stop_are_dropped_and_its_other_warnings_kept(caplog):
    """What Tune logs on a graceful stop and on restoring names Tuner.restore and lists never-started trials;
    once a phase ran, those records no longer reach any handler, while Tune's other warnings still do."""
    import logging

    from pipelines.phases import STOP_NOISE_LOGGERS, TUNE_STOP_NOISE

    for name in STOP_NOISE_LOGGERS:
        logging.getLogger(name).addFilter(TUNE_STOP_NOISE)  # as run_phase does
    tune_log, analysis_log = (logging.getLogger(name) for name in STOP_NOISE_LOGGERS)
    with caplog.at_level(logging.WARNING):
        tune_log.warning("Stop signal received (e.g. via SIGINT/Ctrl+C), ending Ray Tune run. …")
        tune_log.warning("Experiment has been interrupted, but the most recent state was saved.\n"
                         'Resume experiment with: Tuner.restore(path="…", trainable=...)')
        analysis_log.warning("Failed to fetch metrics for 8 trial(s):\n- run_trial_00008: FileNotFoundError(…)")
        tune_log.warning("Trial run_trial_00001 errored after 3 iterations")
    assert [r.getMessage() for r in caplog.records] == ["Trial run_trial_00001 errored after 3 iterations"]
