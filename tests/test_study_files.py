"""Study files: every shipped one validates in both profiles; mistakes in a study file are caught with the file,
the line or field, and what was expected (in-process: nothing here starts Ray or a store)."""

from __future__ import annotations

import pytest
import yaml

from pipelines.study import load_study
from sfli_core.config import ConfigError
from tests.pipeline_helpers import ROOT, write_study

STUDIES = sorted((ROOT / "studies").glob("*.yaml"))
ARMS = {"xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"init.scale": {"type": "log_uniform", "low": 0.5, "high": 2.0}}}}


def test_the_study_files_of_the_issue_exist():
    assert {p.stem for p in STUDIES} >= {"quickstart", "function_fitting", "pinn_suite", "staircase", "condensation"}


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
@pytest.mark.parametrize("smoke", [False, True])
def test_every_study_validates(path, smoke):
    study = load_study(path, smoke=smoke)
    assert study.name == path.stem
    assert study.grid_points()  # every grid point resolves to a valid run configuration (checked on load)


def test_smoke_profiles_are_smaller():
    for path in STUDIES:
        full, smoke = load_study(path), load_study(path, smoke=True)
        arm = next(iter(full.arms))
        assert smoke.run_config(arm).train.steps <= full.run_config(arm).train.steps
        runs = [len(s.grid_points()) * len(s.evaluate.seeds) for s in (smoke, full)]
        assert runs[0] <= runs[1]


def test_study_file_mistakes_are_caught(tmp_path):
    path = write_study(tmp_path / "s.yaml", "files", ARMS, seeds=[0])
    # a nested --set on an arm changes that knob only
    study = load_study(path, overrides=["arms.sfli.set.init.scale=2.5"])
    cfg = study.run_config("sfli")
    assert (cfg.init.name, cfg.init.scale) == ("sfli", 2.5)
    # a duplicate key is an error, with its line
    text = path.read_text() + "search: {trials: 9}\n"
    (tmp_path / "dup.yaml").write_text(text)
    with pytest.raises(ConfigError, match=r"dup.yaml: line \d+: duplicate key 'search'"):
        load_study(tmp_path / "dup.yaml")
    # an error of the base is reported against the base, not an arm
    data = yaml.safe_load(path.read_text())
    data["base"]["train"]["lr"] = -1
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"base\.yaml: base: train\.lr: Input should be greater than 0"):
        load_study(tmp_path / "base.yaml")
    # both profiles are checked, whichever is asked for
    data = yaml.safe_load(path.read_text())
    data["smoke"] = {"base": {"train": {"stepz": 3}}}
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"smoke profile: .*stepz: unknown key"):
        load_study(tmp_path / "smoke.yaml")
    data["smoke"] = {"base": {"train": {"steps": 3, "log_every": 1}}}  # the smoke profile would hide it
    data["base"]["train"]["log_every"] = 0
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"log_every"):
        load_study(tmp_path / "full.yaml", smoke=True)
