"""A report figure on the results page (analysis.results): copied at half its resolution into the page's figure
folder, its link relative to the page."""

from __future__ import annotations

import numpy as np
from PIL import Image

from analysis.results import _figure


def test_a_figure_is_shown_at_half_its_resolution_with_a_link_relative_to_the_page(tmp_path):
    src = tmp_path / "reports" / "quickstart" / "km_steps.png"
    src.parent.mkdir(parents=True)
    pixels = np.zeros((60, 80, 3), dtype=np.uint8)
    pixels[:, :40] = (200, 30, 30)  # left half red, right half blue
    pixels[:, 40:] = (30, 30, 200)
    Image.fromarray(pixels).save(src)
    doc = tmp_path / "docs" / "results.md"
    link = _figure(src, doc.parent / "figures", doc)
    assert link == "![km_steps](figures/km_steps.png)"
    with Image.open(doc.parent / "figures" / "km_steps.png") as shown:
        assert shown.size == (40, 30)
        half = np.asarray(shown.convert("RGB"))
    assert np.abs(half[:, :18].astype(int) - (200, 30, 30)).max() <= 2  # colours kept away from the edge
    assert np.abs(half[:, 22:].astype(int) - (30, 30, 200)).max() <= 2
    with Image.open(src) as kept:
        assert kept.size == (80, 60)  # the report keeps its print resolution
