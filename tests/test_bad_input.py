"""The careless operator's battery, in-process: for each class of bad input, many variants through the command
line as `sfli` calls it. Each exits 2 (invalid input) with one line naming the file or argument and what was
expected, no traceback, and nothing written."""

from __future__ import annotations

import copy
import sqlite3

import pytest
import yaml

from pipelines.cli import main
from tests.pipeline_helpers import free_port, write_study

ARMS = {"xavier": {"set": {"init.name": "xavier_normal"}},
        "sfli": {"set": {"init.name": "sfli"},
                 "search": {"train.lr": {"type": "log_uniform", "low": 1e-4, "high": 1e-1}}}}


def valid_study(tmp_path) -> dict:
    return yaml.safe_load(write_study(tmp_path / "valid.yaml", "valid", ARMS).read_text())


def _set(path: str, value):
    def change(study: dict) -> None:
        *parents, last = path.split("/")
        node = study
        for part in parents:
            node = node[part]
        node[last] = value
    return change


def _rename_arm(new: str):
    def change(study: dict) -> None:
        study["arms"][new] = study["arms"].pop("xavier")
    return change


# case → (change to a valid study, what the message must say)
STUDIES = {
    "repeated_evaluate_seed": (_set("evaluate/seeds", [3, 3, 3]), "evaluate.seeds: [3] given more than once"),
    "repeated_search_seed": (_set("search/seeds", [1000, 1001, 1000]), "search.seeds: [1000] given more than once"),
    "seed_beyond_32_bits": (_set("evaluate/seeds", [0, 2**64]), "evaluate.seeds.1: Input should be less than"),
    "negative_seed": (_set("evaluate/seeds", [-1, 0]), "evaluate.seeds.0: Input should be greater than"),
    "run_seed_beyond_32_bits": (_set("base/seed", 2**32), "seed: Input should be less than or equal to 4294967295"),
    "sampler_seed_negative": (_set("search/sampler_seed", -3), "search.sampler_seed: Input should be greater"),
    "infinite_lr": (_set("base/train/lr", float("inf")), "train.lr: Input should be a finite number"),
    "nan_scale": (_set("base/init", {"scale": float("nan")}), "init.scale: Input should be a finite number"),
    "infinite_search_bound": (_set("arms/sfli/search/train.lr/high", float("inf")),
                              "arms.sfli.search.train.lr.high: Input should be a finite number"),
    "no_steps": (_set("base/train/steps", 0), "base: train.steps: a study's runs need at least one step"),
    "arm_escaping_the_folder": (_rename_arm("../../escape"), "invalid arm name '../../escape'"),
    "arm_with_a_slash": (_rename_arm("sf/li"), "invalid arm name 'sf/li'"),
    "arm_with_a_space": (_rename_arm("my arm"), "invalid arm name 'my arm'"),
    "arm_too_long": (_rename_arm("a" * 41), "at most 40 characters"),
    "study_name_too_long": (_set("name", "s" * 300), "name: String should have at most 64 characters"),
    "study_name_escaping": (_set("name", "../../escape"), "name: String should match pattern"),
    "study_name_hidden": (_set("name", ".hidden"), "name: String should match pattern"),
    "grid_value_twice": (_set("grid", {"model.width": [16, 16]}), "two grid points are both named '16'"),
    "grid_values_alike": (_set("grid", {"train.lr": [0.001, "0.001"]}), "two grid points are both named"),
}


@pytest.mark.parametrize("case", list(STUDIES))
def test_bad_study_files_are_refused_by_validate(tmp_path, capsys, case):
    change, message = STUDIES[case]
    study = valid_study(tmp_path)
    change(study)
    path = tmp_path / f"{case}.yaml"
    path.write_text(yaml.safe_dump(study, width=1000))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err, err


RAW = {  # files no study dict can produce
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not a text file (expected YAML in UTF-8)"),
    "yaml_inf": (b"name: x\narms: {a: {set: {train.lr: .inf}}}\n", "train.lr: Input should be a finite number"),
    "not_a_mapping": (b"- just\n- a list\n", "expected a mapping at the top level"),
    "duplicate_key": (b"name: x\nname: y\narms: {a: {}}\n", "line 2: duplicate key 'name'"),
}


@pytest.mark.parametrize("case", list(RAW))
def test_unreadable_study_files_are_refused(tmp_path, capsys, case):
    content, message = RAW[case]
    path = tmp_path / f"{case}.yaml"
    path.write_bytes(content)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err, err


def test_a_refused_study_writes_nothing(tmp_path, capsys):
    """`run` validates first: an invalid study (here a repeated seed) leaves no runs folder behind."""
    study = valid_study(tmp_path)
    study["evaluate"]["seeds"] = [0, 0]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(study))
    assert main(["run", str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "given more than once" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


ARGUMENTS = {  # argv after the study file / runs folder are filled in → what the message must say
    "no_cpus": (["run", "{study}", "--runs-dir", "{runs}", "--num-cpus", "0"], "--num-cpus: expected a whole number"),
    "negative_cpus": (["run", "{study}", "--runs-dir", "{runs}", "--num-cpus", "-2"], "got '-2'"),
    "resume_no_cpus": (["resume", "valid", "--runs-dir", "{runs}", "--num-cpus", "0"], "--num-cpus"),
    "port_too_high": (["ui", "--runs-dir", "{runs}", "--port", "99999"], "--port: expected a TCP port 1–65535"),
    "port_not_a_number": (["ui", "--runs-dir", "{runs}", "--port", "http"], "--port: expected a TCP port"),
}


@pytest.mark.parametrize("case", list(ARGUMENTS))
def test_bad_arguments_exit_2_naming_the_option(tmp_path, capsys, case):
    argv, message = ARGUMENTS[case]
    study = write_study(tmp_path / "valid.yaml", "valid", ARMS)
    with pytest.raises(SystemExit) as stop:
        main([a.format(study=study, runs=tmp_path / "runs") for a in argv])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()


def _folders(tmp_path):
    """Runs folders that are not what a command expects: a typo, a file, an empty or damaged store."""
    (tmp_path / "a_file").write_text("not a folder")
    for name, content in (("empty", b""), ("garbage", b"this is not a database" * 10)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "mlflow.db").write_bytes(content)
    (tmp_path / "other_db").mkdir()
    with sqlite3.connect(tmp_path / "other_db" / "mlflow.db") as con:
        con.execute("create table notes (text)")
    (tmp_path / "truncated").mkdir()
    (tmp_path / "truncated" / "mlflow.db").write_bytes(b"SQLite format 3\x00" + b"\x10\x00" + b"\x00" * 30)


FOLDERS = {  # --runs-dir → what the message must say
    "typo": ("runs_typo", "no tracking store at"),
    "a_file": ("a_file", "is a file; expected a runs folder"),
    "empty": ("empty", "mlflow.db is empty (damaged?)"),
    "garbage": ("garbage", "mlflow.db is not an SQLite database"),
    "other_db": ("other_db", "not an MLflow tracking store"),
    "truncated": ("truncated", "cannot be read"),
}
READ_ONLY = {"ui": ["ui", "--port", "{port}"], "report": ["report", "valid"], "results": ["results", "--out", "{out}"]}


@pytest.mark.parametrize("command", list(READ_ONLY))
@pytest.mark.parametrize("folder", list(FOLDERS))
def test_read_only_commands_never_create_or_misread_a_store(tmp_path, capsys, command, folder):
    _folders(tmp_path)
    name, message = FOLDERS[folder]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    argv = [a.format(out=tmp_path / "page" / "results.md", port=free_port()) for a in READ_ONLY[command]]
    assert main([*argv, "--runs-dir", str(tmp_path / name)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing created or changed


def test_status_of_a_study_in_a_damaged_store(tmp_path, capsys):
    """`status` reads the state file, then the store it names: a 0-byte store is reported, not re-created."""
    from pipelines.state import StudyState

    _folders(tmp_path)
    runs = tmp_path / "empty"
    StudyState(name="valid", study=copy.deepcopy(valid_study(tmp_path)), tracking_uri=f"sqlite:///{runs / 'mlflow.db'}",
               storage=str(runs / "ray"), address=None, experiment_id="1").save(runs)
    assert main(["status", "valid", "--runs-dir", str(runs)]) == 2
    assert "mlflow.db is empty" in capsys.readouterr().err
    assert (runs / "mlflow.db").stat().st_size == 0
