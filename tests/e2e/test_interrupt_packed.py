"""Kill → resume in a packed evaluation: the driver stopped gracefully (SIGINT, as Ctrl-C), then the driver that
resumes it killed (SIGKILL), and `sfli resume` finishes the study: the packs continue from their checkpoints in
the same runs, and the packed study records what the same study unpacked records."""

from __future__ import annotations

import signal
import time

from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.runner import start_study
from pipelines.tracking import RESUMED_FROM, TRIAL_STARTS
from tests.e2e.interrupts import PACKED_STEPS, Driver, curves, packed_study
from tests.pipeline_helpers import trial_runs


def test_packed_evaluation_stopped_then_killed_resumes_from_checkpoints_as_the_unpacked_study(tmp_path, capsys,
                                                                                              local_ray):
    """SIGINT (Ctrl-C) during a packed evaluation, then SIGKILL of the resuming driver, still in the evaluation:
    the packs continue from their last checkpoints in the same runs, and every run records what the same study
    unpacked (trained in-process, uninterrupted) records."""
    unpacked = packed_study(tmp_path, "unpacked", 1)
    assert start_study(str(unpacked.file), runs=str(unpacked.runs)).status == "finished"

    study = packed_study(tmp_path, "packed", 3)
    client = MlflowClient(study.uri)

    driver = Driver.start(tmp_path, "run", str(study.file), "--runs-dir", str(study.runs), "--num-cpus", "2")
    # checkpoints at steps 20, 60, 100, …: a pack with 3 to 9 of them is between steps 100 and 400
    code = driver.stop(signal.SIGINT, lambda: any(3 <= n < 10 for n in study.checkpoints("evaluate", 0)),
                       "an evaluate pack under way")
    printed = driver.output()
    assert "[search sfli] search seeds in packs of 2 (pack: 3)" in printed
    assert "sfli, xavier: 6 runs in packs of up to 3 (pack: 3)" in printed
    study.stopped_gracefully(driver, code, "evaluate", capsys)
    finished_before = study.finished_starts()
    assert set(finished_before.values()) == {1}

    started = time.time()
    driver = Driver.start(tmp_path, "resume", study.name, "--runs-dir", str(study.runs), "--num-cpus", "2")
    code = driver.stop(signal.SIGKILL, lambda: any(n >= 3 for n in study.checkpoints("evaluate", started)),
                       "a resumed pack 120 steps on")
    assert code == -signal.SIGKILL
    finished_before = study.finished_starts() | finished_before
    assert 2 <= len(finished_before) < 2 + 6  # both search trials, not every evaluate run
    assert main(["status", study.name, "--runs-dir", str(study.runs)]) == 0
    assert f"{study.name}: interrupted: its driver is gone" in capsys.readouterr().out

    study.resume_in_process(capsys)
    client = study.completed_once(finished_before, PACKED_STEPS, 20, search=2,
                                  evaluate=[(arm, str(s)) for arm in ("xavier", "sfli") for s in (0, 1, 2)])
    evaluate = trial_runs(study.uri, "packed", "evaluate")
    assert len({r.data.tags["trial_id"] for r in evaluate}) == 2  # 2 trials of 3 runs
    assert {r.data.params["pack.size"] for r in evaluate} == {"3"}
    restarted = {r.info.run_id: [m.value for m in client.get_metric_history(r.info.run_id, RESUMED_FROM)]
                 for r in evaluate if len(client.get_metric_history(r.info.run_id, TRIAL_STARTS)) > 1}
    assert restarted  # the cut packs continued in the same runs …
    for resumed in restarted.values():  # … from their last checkpoints (or from 0 where they had none):
        # checkpoints every 2 logging steps (steps 20, 60, 100, …) hold the next step to run, 21, 61, 101, …
        assert all(step == 0 or (step - 21) % 40 == 0 for step in resumed), resumed
    assert max(max(resumed) for resumed in restarted.values()) >= 61  # not all from scratch

    packed, reference = curves(study.uri, "packed"), curves(study.uri, "unpacked")
    assert packed.keys() == reference.keys()
    for key, metrics in reference.items():
        assert packed[key].keys() == metrics.keys(), key
        for name, points in metrics.items():
            for (s1, v1), (s2, v2) in zip(points, packed[key][name], strict=True):
                assert s1 == s2 and abs(v1 - v2) <= 1e-10 * max(abs(v1), 1e-12), (key, name, s1, v1, v2)
