"""`sfli results` regenerates the results page from recorded studies: the condensation and staircase studies
(smoke profiles, in-process on the shared Ray instance), the page built twice from the same runs."""

from __future__ import annotations

from analysis.claims import Verdict
from pipelines.cli import main
from pipelines.runner import start_study
from tests.pipeline_helpers import ROOT


def test_results_page_is_regenerated_from_recorded_studies(tmp_path, capsys, local_ray):
    runs = str(tmp_path / "runs")
    for study in ("condensation", "staircase"):  # recorded as `sfli run` records them (its report aside)
        assert start_study(str(ROOT / "studies" / f"{study}.yaml"), smoke=True, runs=runs).status == "finished"
    page = tmp_path / "docs" / "results.md"
    command = ["results", "--runs-dir", runs, "--out", str(page), "--studies", str(ROOT / "studies")]
    assert main(command) == 0, capsys.readouterr().err[-3000:]
    text = page.read_text()
    claims = text[text.index("## The papers' claims"):text.index("## Commands and wall times")]
    rows = [line for line in claims.splitlines() if line.startswith("| ") and "verdict" not in line]
    assert len(rows) == 13
    verdicts = {line.split(" | ")[2] for line in rows}
    assert verdicts <= set(Verdict)
    condensed = next(line for line in rows if "2p orientations" in line)
    assert "in the initial stage" in condensed and condensed.split(" | ")[2] != Verdict.NOT_TESTED
    row = next(line for line in text.splitlines() if line.startswith("| sfli run studies/condensation.yaml |"))
    assert "| 1 | 7 | 1 | 20 | none (fixed knobs) | 7 evaluate |" in row  # grid points, arms, seeds, …
    assert "Seeds above 2p under other clustering conventions" in text
    for link in (line[line.index("](") + 2:-1] for line in text.splitlines() if line.startswith("![")):
        assert (page.parent / link).exists(), link
    assert f"from the runs recorded in `{runs}/mlflow.db`" in text  # the store as the user named it …
    assert "/work/" not in text.replace(runs, "") and "/tmp/" not in text.replace(runs, "")  # … and no other path
    assert main(command) == 0
    assert page.read_text() == text  # the same runs give the same page
