"""A report's figures drawn by worker processes (analysis.drawing): the same files, pixel for pixel and in the
jobs' order, as drawn in the calling process; a figure that fails raises its own error in the caller."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from analysis import figures
from analysis.drawing import MIN_JOBS, draw_all


def _jobs(folder):
    rng = np.random.default_rng(0)
    return [(figures.condensation_heatmap, ({"start": rng.normal(size=(12, 3)).tolist(),
                                              "end": rng.normal(size=(12, 3)).tolist()},
                                             folder / f"heat_{i}.png", f"run {i}", 40, i % 2 == 0))
            for i in range(MIN_JOBS)]


def _pixels(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_workers_draw_the_same_files_in_the_same_order_as_the_caller(tmp_path):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    alone = draw_all(_jobs(here), workers=1)
    side_by_side = draw_all(_jobs(there), workers=2)
    assert [p.name for p in alone] == [p.name for p in side_by_side] == [
        "heat_0.png", "heat_0.pdf", "heat_1.png", "heat_2.png", "heat_2.pdf", "heat_3.png"]
    for a, b in zip(alone, side_by_side):
        assert b.parent == there and b.stat().st_size > 0
        if a.suffix == ".png":
            assert np.array_equal(_pixels(a), _pixels(b))


def test_a_figure_that_fails_in_a_worker_raises_its_error_here(tmp_path):
    jobs = _jobs(tmp_path)
    jobs[2] = (figures.condensation_heatmap, ({}, tmp_path / "bad.png"))  # no panel: no subplot grid
    with pytest.raises(ValueError, match="positive integer") as raised:
        draw_all(jobs, workers=2)
    assert type(raised.value.__cause__).__name__ == "_RemoteTraceback"  # raised in a worker, not here
