"""Treatment is defined once, by the initialisation's registered role: a user's scheme registered as a treatment
is tagged as one by the pipeline, paired as one in the speed-up tables and counted as one by the claims on the
results page; the page names no folder of this machine."""

from __future__ import annotations

import pytest

from analysis.catalogue import Catalogue, ClaimSpec
from analysis.results import build_results
from pipelines.study import Study
from pipelines.trial import TrialContext, _plan
from sfli_core.init import INITS
from sfli_core.record import InitRole, Phase
from tests.pipeline_helpers import ROOT
from tests.test_report import make_store

EXAMPLE = ROOT / "examples" / "poisson3d"


@pytest.fixture
def lecun_as_treatment(monkeypatch):
    """The example's LeCun initialisation registered as the treatment a user's study tests."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    from my_sfli_ext.lecun import lecun_normal

    def lecun_treatment(model, box, seed, scale, params):
        """LeCun normal, registered as a treatment."""
        return lecun_normal(model, box, seed, scale, params)

    lecun_treatment.Params, lecun_treatment.role = lecun_normal.Params, "treatment"
    if "lecun_treatment" not in INITS.names():
        INITS.register("lecun_treatment", lecun_treatment)
    return "lecun_treatment"


def test_a_users_treatment_is_treated_as_one_on_the_results_page(lecun_as_treatment, tmp_path):
    study = Study.model_validate({
        "name": "toy", "base": {"task": {"name": "fit1d_multiscale"}, "train": {"steps": 400}},
        "arms": {"xavier": {"set": {"init.name": "xavier_normal"}}, "mine": {"set": {"init.name": lecun_as_treatment}}},
        "evaluate": {"seeds": [0, 1, 2, 3]}})
    context = TrialContext(study=study, phase=Phase.EVALUATE, tracking_uri="", experiment_id="", parent_run_id="",
                           git_revision="")
    roles = {arm: _plan(context, study.cell(arm, 0), {}, [0], arm, "t", 1).identity.init_role
             for arm in ("xavier", "mine")}
    assert roles == {"xavier": InitRole.BASELINE, "mine": InitRole.TREATMENT}  # the tag the pipeline records

    uri, _ = make_store(tmp_path / "store", treated=("mine", lecun_as_treatment, roles["mine"]),
                        based=("xavier", "xavier_normal", roles["xavier"]))
    catalogue = Catalogue(studies={"toy": []}, claims=[
        ClaimSpec(claim="my scheme raises the initial ε-rank", source="me", test="initial_rank"),
        ClaimSpec(claim="my scheme trains faster", source="me", test="speed", studies=["toy"])])
    doc = tmp_path / "docs" / "results.md"
    text = build_results(uri, tmp_path / "reports", doc, doc.parent / "figures", tmp_path, catalogue,
                         store="runs/mlflow.db")
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| my scheme")}
    # ranks 30 against 1 on every seed: (30 + 1)/(1 + 1) = 15.5 in every pair
    assert "| supported | 15.5× [15.5, 15.5] over 1 cells, 4 pairs |" in rows["my scheme raises the initial ε-rank"]
    assert "median initial rank 30 (treatment) vs 1 (baseline)" in rows["my scheme raises the initial ε-rank"]
    # steps to 1e-2: xavier 400 (or never, within a budget of 400), mine 100: 4× in every pair
    assert "| supported | 4× [4, 4] over 1 cells, 4 pairs |" in rows["my scheme trains faster"]
    assert "speed-up tables of toy" in rows["my scheme trains faster"]
    assert "| fit1d_multiscale mlp | 0.01 | xavier vs mine | 3/4 4/4 | 4×" in text  # the study's speed-up table
    assert "from the runs recorded in `runs/mlflow.db`" in text
    assert str(tmp_path) not in text and "/work/" not in text and "/tmp/" not in text


def test_a_catalogue_with_a_mistake_is_refused_naming_the_field(tmp_path, capsys):
    from pipelines.cli import main

    bad = tmp_path / "claims.yaml"
    bad.write_text("claims:\n  - {claim: c, source: s, test: speeed}\n")
    assert main(["results", "--catalogue", str(bad), "--runs-dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert "claims.0.test: unknown test 'speeed'; valid: initial_rank, speed, accuracy" in err
    bad.write_text("claim:\n  - {claim: c, source: s, test: speed}\n")
    assert main(["results", "--catalogue", str(bad), "--runs-dir", str(tmp_path / "none")]) == 2
    assert "claim" in capsys.readouterr().err and not (tmp_path / "none").exists()  # nothing created
