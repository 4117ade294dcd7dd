"""The compiled Taylor-mode loss with the backend and options runs ship (inductor, its C++ wrapper): it compiles
on this machine's toolchain, and the run follows the uncompiled one. The fast tier checks the traced graph
with ``aot_eager`` (tests/test_taylor.py); this builds and loads inductor's C++ kernels and wrapper, tens of
seconds on an empty cache."""

import pytest

from sfli_core.config import RunConfig
from sfli_core.trainer import Trainer


def test_an_inductor_compiled_run_follows_the_uncompiled_one():
    base = {"task": {"name": "poisson1d"}, "model": {"arch": "mlp", "width": 8, "depth": 2},
            "train": {"steps": 30, "log_every": 10, "n_train": 32, "device": "cpu", "dtype": "float64"}}
    runs = {compile_: Trainer(RunConfig.model_validate(base | {"train": base["train"] | {"compile": compile_}})).run()
            for compile_ in ("on", "off")}
    assert runs["on"].metadata["compiled"] == "true", runs["on"].metadata.get("derivatives.note")
    for a, b in zip(runs["on"].history, runs["off"].history, strict=True):
        assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-9)
        assert a["eval/rel_l2"] == pytest.approx(b["eval/rel_l2"], rel=1e-9)
