"""Packed runs (sfli_core.pack): member k of a pack follows the trajectory of the same run trained alone."""

import math

import pytest
import torch

from sfli_core.config import RunConfig
from sfli_core.pack import Pack, pack_signature
from sfli_core.record import Status
from sfli_core.trainer import Trainer


def config(task: str, arch: str, init: str, seed: int, lr: float, steps: int = 150, dtype: str = "float64",
           **train) -> RunConfig:
    return RunConfig.model_validate({
        "task": {"name": task}, "model": {"arch": arch, "width": 16, "depth": 2}, "init": {"name": init},
        "train": {"lr": lr, "steps": steps, "log_every": 50, "dtype": dtype, "device": "cpu", "n_train": 64,
                  **train},
        "seed": seed})


def worst_difference(packed, solo) -> float:
    """Largest relative difference over every logged value except timings, and over the Gram spectra
    (relative to each spectrum's largest eigenvalue: the smallest ones are round-off)."""
    worst = 0.0
    assert len(packed.history) == len(solo.history)
    for a, b in zip(packed.history, solo.history):
        assert a.keys() == b.keys()
        for key in a:
            if not key.startswith("time/"):
                worst = max(worst, abs(a[key] - b[key]) / max(abs(b[key]), 1e-300))
    for when in solo.spectra:
        for lam_a, lam_b in zip(packed.spectra[when], solo.spectra[when]):
            worst = max(worst, max(abs(x - y) for x, y in zip(lam_a, lam_b)) / max(lam_b))
    return worst


@pytest.mark.parametrize("task", ["fit1d_multiscale", "poisson2d"])
@pytest.mark.parametrize("arch", ["mlp", "modified_mlp", "pirate"])
def test_member_follows_its_solo_run_float64(task, arch):
    torch.set_num_threads(1)
    # members differ in seed, initialisation (arm) and learning rate, as the runs of an evaluation cell do
    cfgs = [config(task, arch, "xavier_normal", 1, 1e-3), config(task, arch, "sfli", 2, 3e-3),
            config(task, arch, "kaiming_uniform", 3, 2e-3, schedule="exponential", decay_steps=50)]
    packed = Pack(cfgs).run()
    for cfg, member in zip(cfgs, packed):
        solo = Trainer(cfg).run()
        assert member.status == solo.status == Status.FINISHED
        assert {k: v for k, v in member.targets.items() if "steps_to" in k} == \
            {k: v for k, v in solo.targets.items() if "steps_to" in k}
        assert worst_difference(member, solo) < 1e-9, (cfg.init.name, cfg.seed)


def test_member_close_to_solo_float32():
    cfgs = [config("poisson2d", "mlp", "sfli", s, 1e-3, dtype="float32") for s in (1, 2, 3)]
    for cfg, member in zip(cfgs, Pack(cfgs).run()):
        assert worst_difference(member, Trainer(cfg).run()) < 1e-4


def test_diverged_member_is_frozen_and_the_others_go_on():
    sgd = {"optimizer": "sgd"}
    cfgs = [config("fit1d_multiscale", "mlp", "xavier_normal", 1, 0.05, **sgd),
            config("fit1d_multiscale", "mlp", "xavier_normal", 2, 1e4, **sgd),  # overflows within 50 steps
            config("fit1d_multiscale", "mlp", "sfli", 3, 0.05, **sgd)]
    packed = Pack(cfgs).run()
    assert [r.status for r in packed] == [Status.FINISHED, Status.DIVERGED, Status.FINISHED]
    assert not math.isfinite(packed[1].history[-1]["train/loss"]) and packed[1].history[-1]["step"] == 50
    for k in (0, 2):
        assert worst_difference(packed[k], Trainer(cfgs[k]).run()) < 1e-9


def test_restored_pack_continues_bit_for_bit():
    cfgs = [config("poisson2d", "mlp", init, seed, 2e-3) for init, seed in (("sfli", 1), ("xavier_normal", 2))]
    whole = Pack(cfgs).run()
    first = Pack(cfgs)
    first.run(until=100)
    state = first.state_dict()
    second = Pack(cfgs)
    second.load_state_dict(state)
    for a, b in zip(second.run(), whole):
        assert [{k: v for k, v in r.items() if not k.startswith("time/")} for r in a.history] == \
               [{k: v for k, v in r.items() if not k.startswith("time/")} for r in b.history]


def test_each_member_is_charged_an_equal_share_of_the_step_time():
    cfgs = [config("fit1d_multiscale", "mlp", "sfli", s, 1e-3, steps=50) for s in (1, 2, 3, 4)]
    pack = Pack(cfgs)
    pack.run()
    train_s = [m.train_seconds for m in pack.members]
    assert max(train_s) == pytest.approx(min(train_s), rel=1e-9) and train_s[0] > 0
    assert all(m.history[-1]["time/wall_s"] >= m.history[-1]["time/train_s"] for m in pack.members)


def test_runs_that_differ_in_shared_settings_are_refused():
    with pytest.raises(ValueError, match="must share task, model"):
        Pack([config("fit1d_multiscale", "mlp", "sfli", 1, 1e-3),
              config("fit1d_multiscale", "modified_mlp", "sfli", 1, 1e-3)])
    assert pack_signature(config("poisson2d", "mlp", "sfli", 1, 1e-3)) == \
        pack_signature(config("poisson2d", "mlp", "xavier_normal", 9, 5e-3, schedule="cosine"))
    with pytest.raises(ValueError, match="lbfgs"):
        Pack([config("poisson2d", "mlp", "sfli", s, 1e-3, lbfgs_steps=5) for s in (1, 2)])


def test_a_compiled_run_alone_is_timed_only_when_an_uncompiled_pack_beats_it_uncompiled():
    from sfli_core.pack_size import decide

    def timer(table):
        timed = []

        def rates_of(cfg, largest):
            timed.append((cfg.train.compile, largest))
            return dict(table[cfg.train.compile]) if largest > 1 else {1: table[cfg.train.compile][1]}
        return timed, rates_of

    cfg = config("poisson2d", "mlp", "sfli", 1, 1e-3, steps=1500, dtype="float32", derivatives="taylor")
    timed, rates_of = timer({"off": {1: 100.0, 2: 90.0, 4: 110.0}})
    assert decide(cfg, 4, rates_of)[:2] == (1, {1: 100.0, 2: 90.0, 4: 110.0}) and timed == [("off", 4)]
    # packs beat the uncompiled run alone: the compiled run alone is timed, and here it is faster still
    timed, rates_of = timer({"off": {1: 100.0, 2: 150.0, 4: 180.0}, "auto": {1: 250.0}})
    assert decide(cfg, 4, rates_of)[:2] == (1, {1: 250.0, 2: 150.0, 4: 180.0})
    assert timed == [("off", 4), ("auto", 1)]
    timed, rates_of = timer({"off": {1: 100.0, 2: 150.0, 4: 300.0}, "auto": {1: 200.0}})
    assert decide(cfg, 4, rates_of)[0] == 4
    # a run that does not compile (too short, nested autograd, no derivatives) is timed as it is, once
    for task, steps, derivatives in (("poisson2d", 150, "taylor"), ("poisson2d", 1500, "autograd"),
                                     ("fit1d_multiscale", 1500, "taylor")):
        other = config(task, "mlp", "sfli", 1, 1e-3, steps=steps, dtype="float32", derivatives=derivatives)
        timed, rates_of = timer({"auto": {1: 100.0, 2: 150.0}})
        assert decide(other, 2, rates_of) == (2, {1: 100.0, 2: 150.0}, "") and timed == [("auto", 2)]


def test_pack_size_measurement_goes_on_past_one_dip_and_stops_after_two():
    from sfli_core.pack_size import choose, exhausted

    assert not exhausted({1: 2387.0, 2: 2031.0})  # a pack of 2 slower than one run: measure 4 as well
    assert not exhausted({1: 2387.0, 2: 2031.0, 4: 3695.0})
    assert exhausted({1: 2387.0, 2: 2031.0, 4: 3695.0, 8: 3000.0, 16: 2900.0})  # two below 0.9 × 3695
    assert choose({1: 2387.0, 2: 2031.0, 4: 3695.0, 8: 6229.0}) == 8
    assert choose({1: 1000.0, 2: 1100.0}) == 1  # under the 15 % that the measurement's noise can eat


def test_pack_size_measurement_keeps_each_sizes_best_round(monkeypatch):
    """Timings that a neighbour's start slowed (the first round) give way to the best of later rounds."""
    from sfli_core import pack_size

    timings = iter([100.0, 150.0, 140.0, 230.0, 220.0, 160.0])  # round 1: 1, 2; rounds 2 and 3: 2, 1
    monkeypatch.setattr(pack_size, "model_steps_per_second", lambda cfg, size, seconds: next(timings))
    rates = pack_size.measure(config("fit1d_multiscale", "mlp", "sfli", 1, 1e-3), largest=2)
    assert rates == {1: 230.0, 2: 220.0} and pack_size.choose(rates) == 1  # one round alone would choose 2


def test_pack_size_measurement_times_optimiser_steps_alone(monkeypatch):
    """A clock that advances 10 ms per run per step: each size measures 100 model-steps/s exactly, in each of
    three rounds (the later two in reverse order), after a two-step warm-up, a two-step probe and 0.3 s of timed
    steps (30 of one run, 15 of a pack of 2); nothing evaluates."""
    from sfli_core import pack_size
    from sfli_core.pack import PackedStep
    from sfli_core.trainer import SoloStep

    clock, calls = [0.0], []
    monkeypatch.setattr(pack_size.time, "perf_counter", lambda: clock[0])
    for cls in (SoloStep, PackedStep):
        def step(self, s, lrs, _original=cls.__call__):
            clock[0] += 0.01 * len(lrs)
            calls.append((len(lrs), s))
            return _original(self, s, lrs)
        monkeypatch.setattr(cls, "__call__", step)
    monkeypatch.setattr(Trainer, "evaluate", lambda *a: pytest.fail("a throughput measurement evaluated"))
    cfg = config("fit1d_multiscale", "mlp", "sfli", 1, 1e-3)
    rates = pack_size.measure(cfg, largest=2)
    assert rates == {1: pytest.approx(100.0), 2: pytest.approx(100.0)}
    rounds = ((1, 30), (2, 15)) + ((2, 15), (1, 30)) * 2
    assert calls == [(size, s) for size, n in rounds for s in [0, 1, 0, 1, *range(n)]]
    pack = Pack([pack_size.timing_config(cfg, pack_size.STEP_LIMIT, 0)])
    before = {k: v.clone() for k, v in pack.lead.params.items()}
    pack.step_fn.stack(pack.members)
    pack.step_fn(pack_size.STEP_LIMIT - 1, [1e-2])  # the last step a measurement can take still updates
    assert any(not torch.equal(before[k], v) for k, v in pack.lead.params.items())
