from pathlib import Path

import pytest

from pipelines.cli import main
from sfli_core.config import ConfigError, RunConfig, apply_overrides, load_run_config, parse_override, validate
from sfli_core.keys import fmt_num

ROOT = Path(__file__).resolve().parents[1]


def test_fmt_num():
    assert [fmt_num(v) for v in (1e-3, 2.5e-4, 30, 1.0, 0.1)] == ["1e-3", "2.5e-4", "30", "1", "1e-1"]


@pytest.mark.parametrize("data,expected", [
    ({"train": {"lrr": 1}}, "train.lrr: unknown key; valid keys: optimizer, lr"),
    ({"task": {"name": "foo"}}, "task: unknown task 'foo'; valid: fit1d_multiscale"),
    ({"model": {"activation": "tan"}}, "model.activation: unknown activation 'tan'; valid: tanh"),
    ({"init": {"name": "he"}}, "init.name: unknown initialisation 'he'; valid: xavier_normal"),
    ({"train": {"steps": "many"}}, "train.steps: Input should be a valid integer"),
    ({"task": {"name": "poisson2d", "params": {"aa": 1}}}, "params.aa: unknown key; valid keys: a, c"),
    ({"model": {"arch": "mlp", "params": {"rwf": True}}}, "model: params.rwf: unknown key; valid keys: residual"),
    ({"model": {"arch": "cnn"}}, "model.arch: unknown architecture 'cnn'; valid: mlp, modified_mlp, pirate"),
    ({"init": {"name": "sfli", "params": {"exponent": 1}}},
     "init: params.exponent: unknown key; valid keys: omega_max"),
    ({"bogus": 1}, "bogus: unknown key; valid keys: task, model"),
])
def test_bad_config_names_the_field_and_the_valid_choices(data, expected):
    with pytest.raises(ConfigError) as err:
        validate(RunConfig, data, "run.yaml")
    assert expected in str(err.value)
    assert str(err.value).startswith("run.yaml: ")


def test_overrides_are_typed():
    cfg = load_run_config(ROOT / "configs" / "fit1d_tanh.yaml", ["train.lr=3e-4", "rank.eps=[1e-2, 1e-3]",
                                                                   "init.name=sfli"])
    assert cfg.train.lr == 3e-4 and cfg.rank.eps == [1e-2, 1e-3] and cfg.init.name == "sfli"
    assert parse_override("seed=4") == (["seed"], 4)
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("seed")


def test_an_override_reaches_a_key_that_is_itself_a_dotted_path():
    """A study's grid axes and an arm's set and search are keyed by dotted configuration paths."""
    study = {"grid": {"task.name": ["poisson2d"], "model.arch": ["mlp"]},
             "arms": {"sfli": {"set": {"init.name": "sfli"}, "search": {"train.lr": {"low": 1e-4}}}},
             "base": {"train": {"lr": 1e-3}}}
    apply_overrides(study, ["grid.task.name=[allen_cahn_d1e-4, poisson2d]", "arms.sfli.set.init.name=xavier_normal",
                            "arms.sfli.search.train.lr={high: 1.0}", "base.train.lr=0.01", "base.seed=3"])
    assert study["grid"] == {"task.name": ["allen_cahn_d1e-4", "poisson2d"], "model.arch": ["mlp"]}
    assert study["arms"]["sfli"] == {"set": {"init.name": "xavier_normal"},
                                     "search": {"train.lr": {"low": 1e-4, "high": 1.0}}}
    assert study["base"] == {"train": {"lr": 0.01}, "seed": 3}


def test_flat_form_records_resolved_task_parameters():
    flat = RunConfig(task={"name": "allen_cahn_d1e-4"}).flat()
    assert flat["task.name"] == "allen_cahn_d1e-4" and flat["task.params.diffusion"] == 1e-4
    assert flat["init.name"] == "xavier_normal" and "train.lr" in flat and flat["seed"] == 0


def test_cli_train_prints_progress_and_summary(capsys):
    code = main(["train", str(ROOT / "configs/fit1d_tanh.yaml"), "--set", "init.name=sfli", "--set",
                 "train.steps=200"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "step    200/200" in out
    assert "ε-rank ε=1e-3 per layer: initial [" in out and "(headline)" in out
    assert "target/steps_to_1e-2:" in out and "final train/loss" in out


def test_cli_bad_input_exits_2_with_a_clear_message(tmp_path, capsys):
    assert main(["train", str(ROOT / "configs/fit1d_tanh.yaml"), "--set", "model.activation=tan"]) == 2
    assert "model.activation: unknown activation 'tan'" in capsys.readouterr().err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err
