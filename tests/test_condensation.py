import pytest
import torch

from sfli_core.condensation import analyse, cosine_matrix, input_weights, leading_order
from sfli_core.config import RunConfig
from sfli_core.trainer import Trainer


def test_counts_on_synthetic_orientations():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(4, dtype=torch.float64)[:3]  # three orthogonal directions
    rows = []
    for c in centres:
        for sign in (1, -1):
            rows.append(sign * c + 0.01 * torch.randn(8, 4, generator=g, dtype=torch.float64))
    u = torch.cat(rows)
    result = analyse(u)
    assert (result.orientations, result.lines) == (6, 3)
    tiny = torch.cat([u, 1e-4 * torch.randn(5, 4, generator=g, dtype=torch.float64)])
    assert analyse(tiny).kept == 48  # negligible neurons are dropped
    broken = torch.full((5, 3), float("nan"), dtype=torch.float64)
    assert (analyse(broken).orientations, analyse(broken).kept) == (0, 0)  # a diverged layer


def test_heat_map_order_separates_the_two_orientations_of_a_line():
    u = torch.tensor([[1.0, 0.3], [-1.0, -0.3], [1.0, 0.31], [-1.0, -0.29], [0.99, 0.3]], dtype=torch.float64)
    order = leading_order(cosine_matrix(u))
    d = cosine_matrix(u)[order][:, order]
    signs = torch.sign(u[order, 0])
    assert int((torch.diff(signs) != 0).sum()) == 1  # one block of each orientation, one boundary
    boundary = int(torch.nonzero(torch.diff(signs))[0]) + 1
    assert d[:boundary, :boundary].min() > 0.99 and d[:boundary, boundary:].max() < -0.99


def condensation_run(activation: str, lr: float, seed: int):
    """The condensation paper's Fig. 3 setting: 5-50-1, 80 points x ~ U[−4, 2]^5, Σ 3.5 sin(5x_k + 1),
    every parameter ~ N(0, 0.005²), full-batch Adam, epoch 100."""
    cfg = RunConfig(task={"name": "sine_sum"}, model={"width": 50, "depth": 1, "activation": activation},
                    init={"name": "small_gaussian", "scale": 0.005, "params": {"exponent": 0.0}},
                    train={"lr": lr, "steps": 100, "log_every": 10}, rank={"enabled": False}, seed=seed)
    trainer = Trainer(cfg)
    result = trainer.run()
    # still in the initial stage: the loss has not fallen to 70 % of its initial value
    assert result.history[-1]["train/loss"] > 0.7 * result.history[0]["train/loss"]
    return analyse(input_weights(trainer.model.hidden[0]))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tanh_condenses_to_at_most_two_orientations(seed):
    result = condensation_run("tanh", 1e-3, seed)
    assert result.orientations <= 2 and result.lines == 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_x2_tanh_condenses_to_more_than_two_and_at_most_six(seed):
    result = condensation_run("x2_tanh", 2.5e-4, seed)
    assert 2 < result.orientations <= 6


def test_tracking_records_counts_and_weights_at_every_logging_step():
    cfg = RunConfig(task={"name": "sine_sum"}, model={"width": 50, "depth": 1, "activation": "tanh"},
                    init={"name": "small_gaussian", "scale": 0.005, "params": {"exponent": 0.0}},
                    train={"lr": 1e-3, "steps": 40, "log_every": 10}, rank={"enabled": False},
                    condensation={"track": True}, seed=0)
    trainer = Trainer(cfg)
    u0 = input_weights(trainer.model.hidden[0]).clone()
    result = trainer.run()
    assert [h["step"] for h in result.history] == [0, 10, 20, 30, 40]
    assert sorted(result.weights) == [0, 10, 20, 30, 40]
    assert torch.equal(torch.tensor(result.weights[0], dtype=u0.dtype), u0)  # before the first step
    end = analyse(input_weights(trainer.model.hidden[0]))
    assert torch.allclose(torch.tensor(result.weights[40], dtype=u0.dtype), input_weights(trainer.model.hidden[0]))
    assert result.history[-1]["condensation/layer1/orientations"] == end.orientations
    assert result.history[0]["condensation/layer1/orientations"] == analyse(u0).orientations
    resumed = Trainer(cfg)
    resumed.run(until=20)
    state = resumed.state_dict()
    restored = Trainer(cfg)
    restored.load_state_dict(state)  # a restart keeps the weights already taken
    assert restored.run().weights == result.weights
    untracked = Trainer(RunConfig.model_validate({**cfg.model_dump(), "condensation": {"track": False}})).run()
    assert untracked.weights == {} and "condensation/layer1/orientations" not in untracked.history[-1]


def test_initial_stage_is_the_last_step_before_the_loss_falls_below_70_percent():
    import pandas as pd

    from analysis.condensation import stage_step

    loss = pd.Series([10.0, 9.0, 8.0, 6.9, 5.0, 7.5], index=[0, 10, 20, 30, 40, 50])
    assert stage_step(loss) == 20  # 6.9 < 7 first at step 30; a later rise does not bring the stage back
    assert stage_step(pd.Series([10.0, 9.5, 9.0], index=[0, 50, 100])) == 100  # still in it at the end
    assert stage_step(pd.Series([10.0, 1.0], index=[0, 10])) == 0
