"""A runs folder stands on its own: its state files name what lies inside it relatively, and its embedded store,
moved or copied with it, is re-pointed at its own artifacts (the end-to-end move of an interrupted study is in
tests/e2e/test_interrupt_search.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from mlflow.tracking import MlflowClient

from pipelines.state import StudyState
from pipelines.tracking import Tracker, check_store
from tests.pipeline_helpers import ROOT


def _state(runs, **where) -> StudyState:
    return StudyState(name="s", study={"name": "s"}, address=None, experiment_id="1",
                      **({"tracking_uri": f"sqlite:///{runs / 'mlflow.db'}", "storage": str(runs / "ray")} | where))


def test_state_names_the_folder_contents_relatively(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    _state(a).save(a)
    saved = json.loads(StudyState.path(a, "s").read_text())
    assert (saved["tracking_uri"], saved["storage"]) == ("sqlite:///mlflow.db", "ray")
    shutil.copytree(a, b)
    moved = StudyState.load(b, "s")  # the folder given wins
    assert (moved.tracking_uri, moved.storage) == (f"sqlite:///{b / 'mlflow.db'}", str(b / "ray"))


def test_what_lies_outside_the_folder_is_kept_as_given(tmp_path):
    runs = tmp_path / "runs"
    _state(runs, tracking_uri="http://127.0.0.1:5000", storage="s3://bucket/ray").save(runs)
    again = StudyState.load(runs, "s")
    assert (again.tracking_uri, again.storage) == ("http://127.0.0.1:5000", "s3://bucket/ray")
    elsewhere = tmp_path / "elsewhere" / "mlflow.db"
    _state(runs, tracking_uri=f"sqlite:///{elsewhere}").save(runs)
    assert StudyState.load(runs, "s").tracking_uri == f"sqlite:///{elsewhere}"


def test_a_state_file_with_absolute_paths_follows_its_folder(tmp_path):
    """Written before paths were relative: ``<old>/mlflow.db`` and ``<old>/ray`` are the folder's own."""
    old, new = tmp_path / "old", tmp_path / "new"
    path = StudyState.path(new, "s")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"name": "s", "study": {"name": "s"}, "tracking_uri": f"sqlite:///{old / 'mlflow.db'}",
                                "storage": str(old / "ray"), "address": None, "experiment_id": "1"}))
    state = StudyState.load(new, "s")
    assert (state.tracking_uri, state.storage) == (f"sqlite:///{new / 'mlflow.db'}", str(new / "ray"))


MAKE_STORE = """
import sys
from pathlib import Path
from pipelines.tracking import Tracker
runs = Path(sys.argv[1])
tracker = Tracker(f"sqlite:///{runs / 'mlflow.db'}")
experiment = tracker.experiment("s", runs / "artifacts")
run = tracker.client.create_run(experiment).info.run_id
tracker.log_artifact(run, Path(sys.argv[2]))
print(experiment, run)
"""


def test_a_copied_store_reads_and_writes_its_own_artifacts(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    (tmp_path / "note.txt").write_text("first")
    # made by another process, as a moved folder is (MLflow caches a run's artifact location per process)
    made = subprocess.run([sys.executable, "-c", MAKE_STORE, str(a), str(tmp_path / "note.txt")], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    experiment, run = made.stdout.split()
    shutil.copytree(a, b)
    shutil.rmtree(a)  # nothing of the copy may depend on the original

    uri = f"sqlite:///{b / 'mlflow.db'}"
    check_store(uri)
    client = MlflowClient(uri)
    assert client.get_experiment(experiment).artifact_location == (b / "artifacts" / "s").as_uri()
    assert client.get_run(run).info.artifact_uri.startswith((b / "artifacts" / "s").as_uri())
    copied = client.download_artifacts(run, "note.txt", str(tmp_path / "down"))
    assert open(copied).read() == "first"
    (tmp_path / "down").mkdir(exist_ok=True)
    (tmp_path / "later.txt").write_text("second")
    Tracker(uri).log_artifact(run, tmp_path / "later.txt")
    assert not a.exists() and any(p.name == "later.txt" for p in (b / "artifacts").rglob("*"))
    check_store(uri)  # a second look changes nothing
    assert client.get_run(run).info.artifact_uri.startswith((b / "artifacts" / "s").as_uri())


def test_a_reader_that_goes_away_is_not_an_error_of_ours():
    """`sfli list | head -1`: the pipe closes before the output is written; no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "list"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1 and "Traceback" not in err and "BrokenPipe" not in err, err
