import math

import pytest
import torch

from sfli_core import keys
from sfli_core.config import RunConfig
from sfli_core.optim import Adam
from sfli_core.trainer import Trainer, cpu_chunk_rows


def small_config(**train) -> RunConfig:
    return RunConfig(task={"name": "poisson1d"}, model={"width": 16, "depth": 2},
                     init={"name": "sfli"}, rank={"every": 2},
                     train={"steps": 60, "log_every": 10, "resample_every": 15, "n_train": 64, **train},
                     targets={"thresholds": [1e6, 1e-12]}, seed=3)


def test_functional_adam_matches_torch_adam():
    g = torch.Generator().manual_seed(0)
    p_ref = [torch.randn(5, 3, generator=g, requires_grad=True), torch.randn(3, generator=g, requires_grad=True)]
    p_fun = [p.detach().clone() for p in p_ref]
    ref = torch.optim.Adam(p_ref, lr=1e-2)
    ours, state = Adam(), None
    state = ours.init(p_fun)
    for _ in range(50):
        grads = [torch.randn(p.shape, generator=g) for p in p_ref]
        for p, gr in zip(p_ref, grads):
            p.grad = gr.clone()
        ref.step()
        ours.update(p_fun, grads, state, 1e-2)
    for a, b in zip(p_ref, p_fun):
        assert torch.allclose(a.detach(), b, atol=1e-6, rtol=0)


def test_resumed_run_is_bitwise_equal_to_an_uninterrupted_run(tmp_path):
    full = Trainer(small_config()).run()

    first = Trainer(small_config())
    first.run(until=27)  # mid-way between logging steps, after a resample
    first.save(tmp_path / "state.pt")
    del first
    resumed = Trainer(small_config())
    resumed.restore(tmp_path / "state.pt")
    result = resumed.run()

    assert result.status == full.status == "finished"
    assert len(result.history) == len(full.history) == 7
    for a, b in zip(result.history, full.history):
        assert {k: v for k, v in a.items() if not k.startswith("time/")} == \
               {k: v for k, v in b.items() if not k.startswith("time/")}
    # the parameters themselves are bitwise equal
    ref = Trainer(small_config())
    ref.run()
    for name, p in resumed.params.items():
        assert torch.equal(p, ref.params[name]), name


def test_diverging_learning_rate_is_a_recorded_outcome():
    cfg = RunConfig(task={"name": "helmholtz2d_a1-4_k1"}, model={"width": 16, "depth": 2},
                    train={"lr": 1e6, "optimizer": "sgd", "steps": 200, "log_every": 5, "n_train": 64})
    result = Trainer(cfg).run()
    assert result.status == "diverged"
    last = result.history[-1]
    assert not math.isfinite(last[keys.TRAIN_LOSS])
    assert last[keys.STEP] < 200  # stopped early


def test_logging_targets_and_ranks_are_recorded():
    cfg = small_config(steps=40)
    result = Trainer(cfg).run()
    steps = [r[keys.STEP] for r in result.history]
    assert steps == [0, 10, 20, 30, 40]
    first = result.history[0]
    assert {keys.TRAIN_LOSS, keys.loss_term("pde"), keys.loss_term("bc"), keys.EVAL_REL_L2,
            keys.rank_key(1e-3, 2), keys.TIME_TRAIN} <= set(first)
    assert first[keys.TRAIN_LOSS] == pytest.approx(first[keys.loss_term("pde")] + first[keys.loss_term("bc")])
    # τ = 1e6 is met at step 0, τ = 1e-12 never: reached and censored
    assert result.targets[keys.steps_to(1e6)] == 0
    assert keys.steps_to(1e-12) not in result.targets
    assert len(result.spectra["initial"]) == 2 and len(result.spectra["initial"][0]) == 16


def test_training_reduces_the_loss_and_sfli_beats_xavier_on_fit1d():
    losses = {}
    for init in ("xavier_normal", "sfli"):
        cfg = RunConfig(init={"name": init}, train={"steps": 300, "log_every": 100}, rank={"enabled": False})
        losses[init] = Trainer(cfg).run().history[-1][keys.TRAIN_LOSS]
    assert losses["sfli"] < 0.1 * losses["xavier_normal"], losses


def test_lbfgs_is_not_silently_accepted():
    with pytest.raises(ValueError, match="optimizer"):
        RunConfig(train={"optimizer": "lbfgs"})


def test_train_step_is_a_function_of_parameters_state_and_batch():
    """The same step on a detached copy of the parameters (the functional_call path) gives the same result
    as on the module's own tensors."""
    trainer = Trainer(small_config())
    copy = {k: v.detach().clone().requires_grad_(True) for k, v in trainer.params.items()}
    copy_state = trainer.optimizer.init(list(copy.values()))
    own = trainer.train_step(trainer.params, trainer.opt_state, trainer.batch, 1e-3)
    other = trainer.train_step(copy, copy_state, trainer.batch, 1e-3)
    assert torch.equal(own["loss"], other["loss"])
    for name, p in trainer.params.items():
        assert torch.allclose(p, copy[name], atol=1e-7, rtol=0), name


def test_learning_rate_schedules_with_warm_up():
    from sfli_core.config import TrainConfig
    from sfli_core.optim import learning_rate

    cfg = TrainConfig(lr=1e-3, schedule="exponential", decay_rate=0.5, decay_steps=100, warmup_steps=10, steps=400)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)  # 1/10 of the way up
    assert learning_rate(cfg, 9) == pytest.approx(1e-3 * 0.5 ** 0.09)
    assert learning_rate(cfg, 200) == pytest.approx(2.5e-4)
    cosine = TrainConfig(lr=2e-3, schedule="cosine", steps=100)
    assert learning_rate(cosine, 50) == pytest.approx(1e-3) and learning_rate(cosine, 100) == pytest.approx(0.0)


def lbfgs_config(**train) -> RunConfig:
    return RunConfig(task={"name": "poisson1d", "params": {"a": 4.0}}, model={"width": 16, "depth": 2},
                     init={"name": "sfli"},
                     train={"steps": 100, "lbfgs_steps": 40, "log_every": 20, "n_train": 64, **train},
                     rank={"enabled": False}, targets={"thresholds": [1e-3]}, seed=1)


def test_lbfgs_refinement_after_adam_lowers_the_loss_and_is_logged():
    refined = Trainer(lbfgs_config()).run()
    adam_only = Trainer(lbfgs_config(lbfgs_steps=0, steps=140)).run()
    steps = [r[keys.STEP] for r in refined.history]
    assert steps == list(range(0, 141, 20)) and refined.status == "finished"
    assert [r[keys.TRAIN_LR] for r in refined.history][-3:] == [1.0, 1.0, 1.0]  # the L-BFGS phase
    at_switch = refined.history[5][keys.TRAIN_LOSS]  # step 100: Adam's last point
    assert refined.history[-1][keys.TRAIN_LOSS] < 0.2 * at_switch  # measured: 233 → 4.7 (Adam alone: 150)
    assert refined.history[-1][keys.TRAIN_LOSS] < adam_only.history[-1][keys.TRAIN_LOSS]


def test_a_run_resumed_inside_the_lbfgs_phase_matches_an_uninterrupted_one(tmp_path):
    full = Trainer(lbfgs_config()).run()
    first = Trainer(lbfgs_config())
    first.run(until=117)
    first.save(tmp_path / "state.pt")
    resumed = Trainer(lbfgs_config())
    resumed.restore(tmp_path / "state.pt")
    result = resumed.run()
    for a, b in zip(result.history, full.history, strict=True):
        assert {k: v for k, v in a.items() if not k.startswith("time/")} == \
               {k: v for k, v in b.items() if not k.startswith("time/")}


def test_evaluation_on_a_cpu_runs_in_cache_sized_chunks_with_the_whole_grids_values():
    # 2**19 bytes of a width-64 activation: 2048 float32 rows, 1024 float64 rows
    assert cpu_chunk_rows(64, torch.zeros(1, dtype=torch.float32)) == 2048
    assert cpu_chunk_rows(64, torch.zeros(1, dtype=torch.float64)) == 1024
    trainer = Trainer(RunConfig.model_validate({"task": {"name": "poisson2d"}, "model": {"width": 64, "depth": 3},
                                                "train": {"steps": 1, "dtype": "float64"}}))
    x = torch.rand(2500, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))  # 3 chunks
    with torch.no_grad():
        whole = trainer.model(x)[0]
        chunked = trainer.predict(x)
        whole_grid_error = trainer.task.rel_l2(trainer.model(trainer.eval_x)[0], trainer.eval_y)
    assert chunked.shape == whole.shape == (2500, 1)
    torch.testing.assert_close(chunked, whole, rtol=1e-13, atol=1e-15)
    assert trainer.evaluate(False)[0][keys.EVAL_REL_L2] == pytest.approx(whole_grid_error, rel=1e-12)
