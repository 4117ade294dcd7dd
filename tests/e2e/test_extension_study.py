"""The README's walk-through of a user extension (examples/poisson3d): the whole study (search, paired
evaluation, then its report) run from another folder, the study's python_path finding the user's package."""

from __future__ import annotations

import sys

from mlflow.tracking import MlflowClient

from pipelines.cli import main
from pipelines.runner import start_study
from tests.pipeline_helpers import ROOT, trial_runs

EXAMPLE = ROOT / "examples" / "poisson3d"
ARCH, LECUN = "my_sfli_ext.twobranch:TwoBranchMLP", "my_sfli_ext.lecun:lecun_normal"


def test_example_study_end_to_end_through_the_cli(tmp_path, monkeypatch, capsys, local_ray):
    monkeypatch.chdir(tmp_path)  # not the repository: only the study's python_path finds my_sfli_ext
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command's own path changes are undone afterwards
    runs = tmp_path / "runs"
    assert start_study(str(EXAMPLE / "study.yaml"), smoke=True, runs=str(runs)).status == "finished"
    capsys.readouterr()
    assert main(["report", "poisson3d_extension", "--runs-dir", str(runs), "--no-figures"]) == 0
    out = capsys.readouterr().out
    uri = f"sqlite:///{runs / 'mlflow.db'}"
    search, evaluate = trial_runs(uri, "poisson3d_extension", "search"), trial_runs(uri, "poisson3d_extension",
                                                                                   "evaluate")
    assert len(search) == 2 and len(evaluate) == 6
    tags = {(r.data.tags["arm"], r.data.tags["seed"]): r.data.tags for r in evaluate}
    assert set(tags) == {(arm, s) for arm in ("lecun", "xavier", "sfli") for s in ("0", "1")}
    for (arm, _), t in tags.items():
        assert t["status"] == "finished" and t["task"] == "poisson3d_a2_c5e-1" and t["arch"] == ARCH
        assert t["init_role"] == ("treatment" if arm == "sfli" else "baseline")
    lecun = next(r for r in evaluate if r.data.tags["arm"] == "lecun")
    assert lecun.data.params["init.name"] == LECUN and lecun.data.params["init.params.bias_std"] == "0.0"
    assert {"initial/rank/eps1e-3/layer2", "final/eval/rel_l2", "condensation/layer2/orientations"} <= set(
        lecun.data.metrics)
    assert {a.path for a in MlflowClient(uri).list_artifacts(lecun.info.run_id)} >= {"staircase.png",
                                                                                       "condensation.png"}
    # the report pairs each baseline, the user's included, with the treatment
    rows = [line.split() for line in out.splitlines() if line.startswith("poisson3d_a2_c5e-1 ")]
    assert {(r[2], r[3], r[5]) for r in rows} == {(tau, baseline, "sfli") for tau in ("1e-1", "3e-2")
                                                  for baseline in ("lecun", "xavier")}
