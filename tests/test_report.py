"""Report generation from a small MLflow store built here (real MLflow, SQLite)."""

from __future__ import annotations

import html
import json
import math
import re

import pandas as pd
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from analysis.formats import latex_escape
from analysis.report import build_report
from analysis.runs import load_runs
from pipelines.reporting import report

STEPS = [0, 100, 200, 300, 400]
PARAMS = {"train.steps": 400, "model.depth": 2, "meta.hidden_layers": 2, "model.width": 32, "model.activation": "tanh",
          "rank.headline": 0.001, "targets.metric": "train/loss", "targets.thresholds": json.dumps([0.01, 0.001])}


def make_store(tmp_path, treated: tuple[str, str, str] = ("sfli", "sfli", "treatment"),
               based: tuple[str, str, str] = ("xavier", "xavier_normal", "baseline")) -> tuple[str, str]:
    """A finished study 'toy': arms ``based`` and ``treated`` (arm, initialisation, its recorded role), 4 seeds
    each, and a search of the treated arm."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("toy", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, tags={"study": "toy", "phase": "evaluate", "run_type": "parent",
                                          "execution": "1", "status": "finished"}).info.run_id
    # the baseline reaches 1e-2 at step 400 (seeds 0-2) and never on seed 3; the treatment always at 100:
    # speed-up 4, and a lower bound of 400/100 = 4 for the censored seed
    for (arm, init, role), reach, rank, err in ((based, 400, 1, 0.3), (treated, 100, 30, 0.03)):
        for seed in range(4):
            tags = {"study": "toy", "phase": "evaluate", "arm": arm, "variant": "base", "task": "fit1d_multiscale",
                    "arch": "mlp", "init": init, "init_role": role, "status": "finished", "run_type": "trial",
                    "execution": "1", "mlflow.parentRunId": parent}
            run_id = client.create_run(exp, tags=tags).info.run_id
            params = {"seed": seed, **PARAMS}
            if arm == treated[0]:
                params["search.init.scale"] = 1.9  # the value its search chose
            metrics = [Metric("final/eval/rel_l2", err * (1 + 0.1 * seed), 0, 400), Metric("time/train_s", 4.0, 0, 400),
                       Metric("initial/rank/eps1e-3/layer1", rank, 0, 0),
                       Metric("initial/rank/eps1e-3/layer2", rank, 0, 0),
                       Metric("final/rank/eps1e-3/layer1", rank + 1, 0, 400),
                       Metric("final/rank/eps1e-3/layer2", rank + 2, 0, 400)]
            if arm == treated[0] or seed < 3:
                metrics += [Metric("target/steps_to_1e-2", reach, 0, 400),
                            Metric("target/seconds_to_1e-2", reach / 100, 0, 400)]
            for s in STEPS:
                metrics += [Metric("train/loss", 1.0 / (1 + s / reach), 0, s),
                            Metric("rank/eps1e-3/layer2", rank + (s >= reach), 0, s)]
            client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                             tags=[RunTag("seed", str(seed))])
            spectra = tmp_path / "spectra.json"
            spectra.write_text(json.dumps({"initial": [[1.0] * rank, [0.5] * rank],
                                           "final": [[1.0] * rank, [0.5] * (rank + 2)]}))
            client.log_artifact(run_id, str(spectra))
            client.set_terminated(run_id)
    _search(client, exp, treated[0])
    return uri, parent


def _search(client: MlflowClient, exp: str, arm: str) -> None:
    """The treated arm's search: three trials (one pruned by successive halving at step 100), two at a time until
    it was resumed with one, and its choice flagged at the upper edge of its range."""
    parent = client.create_run(exp, tags={"study": "toy", "phase": "search", "run_type": "parent",
                                          "execution": "1", "status": "finished", f"parallel_trials/{arm}": "2, then 1",
                                          f"edge/{arm}/init.scale": EDGE}).info.run_id
    for scale, status, steps in ((1.9, "finished", 400), (0.7, "finished", 400), (1.2, "stopped", 100)):
        tags = {"study": "toy", "phase": "search", "arm": arm, "variant": "base", "status": status,
                "run_type": "trial", "execution": "1", "mlflow.parentRunId": parent}
        run_id = client.create_run(exp, tags=tags).info.run_id
        params = {"seed": 1000, **PARAMS, "search.init.scale": scale}
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                         metrics=[Metric("train/loss", 1.0 / (1 + s), 0, s) for s in range(0, steps + 1, 100)]
                         + [Metric("time/train_s", steps / 100, 0, steps)])


EDGE = "init.scale chosen at the upper edge of [0.5, 2] (1.9): widen the range"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[str, str]:
    """The toy store, shared by the tests that only read it."""
    return make_store(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def toy_report(toy, tmp_path_factory):
    """The toy study's report with its figures, built once: (result, folder)."""
    out = tmp_path_factory.mktemp("toy_report")
    return build_report(toy[0], ["toy"], out), out


def test_report_tables_and_figures(toy_report):
    result, out = toy_report
    row = result.speedup.iloc[0]
    assert (row["baseline"], row["treatment"], row["tau"]) == ("xavier", "sfli", 0.01)
    assert (row["pairs"], row["reached_base"], row["reached_treat"]) == (4, 3, 4)
    # Kaplan–Meier: xavier 3 of 4 at step 400 (the 4th censored there) → median 400; sfli all at 100
    assert (row["median_base"], row["median_treat"], row["speedup"]) == (400, 100, 4.0)
    assert row["ert_base"] == pytest.approx(1600 / 3) and row["ert_ratio"] == pytest.approx(16 / 3)
    assert (row["exact_pairs"], row["exact_ratio"], row["pairs_treat_only"]) == (3, 4.0, 1)
    assert row["error_ratio"] == pytest.approx(10.0)
    assert row["signed_rank_p"] == 0.125 == row["signed_rank_min_p"] and row["underpowered"]
    assert row["logrank_p"] < 0.05 and row["logrank_p_adj"] == row["logrank_p"]  # one row: nothing to adjust
    assert (row["initial_rank_base"], row["initial_rank_treat"]) == (1, 30)
    # nobody reaches 1e-3: no estimate, no log-rank p; the error test, the same at both τ, is one comparison
    other = result.speedup.iloc[1]
    assert other["tau"] == 0.001 and other["speedup_statement"] == "no estimate" and math.isnan(other["logrank_p"])
    assert other["signed_rank_p_adj"] == row["signed_rank_p_adj"] == row["signed_rank_p"]
    for name in ("speedup.md", "speedup.csv", "speedup_summary.tex", "layerwise.csv", "staircase.csv", "report.md",
                 "report.html", "speedup_forest.png", "speedup_forest.pdf", "km_toy_fit1d_multiscale_mlp.png",
                 "km_toy_fit1d_multiscale_mlp.pdf", "staircase_toy_fit1d_multiscale_mlp.png",
                 "initial_rank_toy_fit1d_multiscale_mlp.png", "spectra_toy_fit1d_multiscale_mlp.png"):
        assert (out / name).stat().st_size > 0, name
    # what each arm's search tuned, chose and spent, and the choice at the edge of its range
    fixed = "| toy | base | xavier | xavier_normal | not tuned (fixed knobs) | - | 0 | 0 | 0 | 0 | - | - |"
    assert fixed in result.markdown
    tuned = f"| toy | base | sfli | sfli | init.scale | init.scale=1.9 | 3 | 1 | 900 | 9 | 2, then 1 | {EDGE} |"
    assert tuned in result.markdown
    # every column of every table written is explained once
    for table in ("speedup", "speedup_summary", "tuning", "layerwise", "staircase"):
        for column in pd.read_csv(out / f"{table}.csv").columns:
            assert result.markdown.count(f"- `{column}`: ") == 1, column
    # the terminal gets the compact table, at most 120 columns, with the headline statement
    assert max(len(line) for line in result.terminal.splitlines()) <= 120
    assert "4× [" in result.terminal and "xavier vs sfli" in result.terminal


def test_latex_is_escaped_and_ascii(toy, tmp_path):
    uri, _ = toy
    build_report(uri, ["toy"], tmp_path / "r", with_figures=False)
    for tex in (tmp_path / "r").glob("*.tex"):
        text = tex.read_text()
        assert text.isascii(), tex.name
        body = text.split("\\hline", 1)[1]
        assert re.search(r"(?<!\\)[_%&#](?![^$]*\$)", body.replace(" & ", " ")) is None, tex.name
        columns = text.splitlines()[0].split("{")[2].rstrip("}")
        for line in text.splitlines()[2:-2]:  # every row has one cell per column
            if line.endswith("\\") or line.endswith("\\hline"):
                assert line.count(" & ") == len(columns) - 1, (tex.name, line)
    assert latex_escape("a_b & 50% → ε ≥ 2×") == r"a\_b \& 50\% $\to$ $\varepsilon$ $\geq$ 2$\times$"


def test_html_report_is_self_contained(toy_report):
    result, _ = toy_report
    page = result.html.read_text()
    pngs = [p for p in result.files if p.suffix == ".png"]
    assert page.count("data:image/png;base64,") == len(pngs) >= 5
    assert not re.search(r'src="(?!data:)', page) and "<link" not in page
    assert "<th>speedup_statement</th>" in page and "Columns" in page


def test_report_is_recorded_as_versions_never_replaced(tmp_path):
    uri, parent = make_store(tmp_path)
    first = report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False)
    client = MlflowClient(uri)
    assert not client.list_artifacts(parent, "report"), "sfli report without --log records nothing"
    assert "xavier vs sfli" in first.terminal
    for _ in range(2):
        report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False, log=True)
    assert {a.path for a in client.list_artifacts(parent, "report")} == {"report/v1", "report/v2"}
    logged = {a.path for a in client.list_artifacts(parent, "report/v2")}
    assert "report/v2/speedup.csv" in logged and "report/v2/report.html" in logged
    speedup = client.get_metric_history(parent, "result/base/xavier-vs-sfli/tau1e-2/speedup")
    assert sorted((m.step, m.value) for m in speedup) == [(1, 4.0), (2, 4.0)]
    assert client.get_run(parent).data.tags["report_version"] == "2"


def test_a_report_over_all_studies_is_recorded_on_none(toy, tmp_path):
    from sfli_core.config import ConfigError

    uri, parent = toy
    report(None, all_studies=True, uri=uri, out=str(tmp_path / "all"), with_figures=False)
    assert not MlflowClient(uri).list_artifacts(parent, "report")
    with pytest.raises(ConfigError, match="does not apply to --all"):
        report(None, all_studies=True, uri=uri, log=True)


def test_report_of_an_unknown_study_is_a_clear_error(toy, tmp_path):
    from sfli_core.config import ConfigError

    uri, _ = toy
    with pytest.raises(ConfigError, match="no recorded study named nope"):
        report("nope", uri=uri, out=str(tmp_path / "out"))


def test_a_report_of_an_unfinished_study_says_so_and_is_not_recorded(tmp_path):
    from sfli_core.config import ConfigError

    uri, parent = make_store(tmp_path)
    client = MlflowClient(uri)
    client.set_tag(parent, "status", "running")  # interrupted in its evaluate phase
    result = report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False)
    warning = "WARNING: study 'toy' execution 1 has not finished (its evaluate phase is running)"
    assert result.terminal.startswith(warning) and "sfli resume toy" in result.terminal
    assert warning in result.markdown and html.escape(warning) in result.html.read_text()
    with pytest.raises(ConfigError, match="recorded on a study's runs once it has finished"):
        report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False, log=True)
    assert not client.list_artifacts(parent, "report") and "report_version" not in client.get_run(parent).data.tags
    client.set_tag(parent, "status", "finished")
    assert "WARNING" not in report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False).terminal


def test_a_recording_cut_off_stays_marked_incomplete(tmp_path, monkeypatch):
    from pipelines.tracking import Tracker

    uri, parent = make_store(tmp_path)
    logged = []
    original = Tracker.log_artifact

    def killed_after_two(self, run_id, path, folder=None):
        if len(logged) == 2:
            raise KeyboardInterrupt  # the command killed while it records its files
        logged.append(path)
        original(self, run_id, path, folder)

    monkeypatch.setattr(Tracker, "log_artifact", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False, log=True)
    monkeypatch.undo()
    tags = MlflowClient(uri).get_run(parent).data.tags
    assert tags["report/v1"] == "incomplete" and "report_version" not in tags
    assert len(MlflowClient(uri).list_artifacts(parent, "report/v1")) == 2
    report("toy", uri=uri, out=str(tmp_path / "out"), with_figures=False, log=True)
    tags = MlflowClient(uri).get_run(parent).data.tags
    assert (tags["report/v1"], tags["report/v2"], tags["report_version"]) == ("incomplete", "complete", "2")


def test_resume_records_the_final_report_a_killed_driver_never_did(tmp_path, capsys):
    """A driver killed during its closing report leaves a finished execution without one: `sfli resume` makes
    it, once."""
    from pipelines.cli import main
    from pipelines.state import StudyState, StudyStatus

    uri, parent = make_store(tmp_path)
    StudyState(name="toy", study={"name": "toy"}, tracking_uri=uri, storage=str(tmp_path / "ray"), address=None,
               experiment_id="1", status=StudyStatus.FINISHED).save(tmp_path)
    assert main(["resume", "toy", "--runs-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "but its report, which was never recorded" in out and "report/v1" in out, out
    assert main(["resume", "toy", "--runs-dir", str(tmp_path)]) == 0
    assert "report/v" not in capsys.readouterr().out
    assert {a.path for a in MlflowClient(uri).list_artifacts(parent, "report")} == {"report/v1"}
    assert StudyState.load(tmp_path, "toy").report == 1


def test_report_pages_name_the_store_as_the_user_did_and_no_folder_of_this_machine(tmp_path, monkeypatch):
    """`sfli report toy --runs-dir runs` from the folder above the runs folder: the pages say `runs/mlflow.db`;
    a study's final report, given the absolute embedded store its state holds, says the same."""
    make_store(tmp_path / "runs")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = report("toy", runs="runs", out="out", with_figures=False)
    for page in (result.markdown, result.html.read_text()):
        assert "tracking store runs/mlflow.db" in page and str(tmp_path) not in page
    held = report("toy", runs="runs", uri=f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", out="out2",
                  with_figures=False)
    assert "tracking store runs/mlflow.db" in held.markdown and str(tmp_path) not in held.markdown


def test_figures_are_reused_only_while_their_runs_and_code_are_unchanged(toy, toy_report, tmp_path, monkeypatch):
    """A second report of the same runs draws nothing (same files, untouched); a run whose outcome changed,
    tuning figures, other drawing code, a deleted figure or a damaged manifest draw them again."""
    from analysis import figure_cache

    first, out = toy_report
    pngs = sorted(p for p in first.files if p.suffix == ".png")
    stamps = {p: p.stat().st_mtime_ns for p in pngs}
    again = build_report(toy[0], ["toy"], out)  # the same report again, into its own folder
    assert sorted(p for p in again.files if p.suffix == ".png") == pngs and again.markdown == first.markdown
    assert {p: p.stat().st_mtime_ns for p in pngs} == stamps  # reused, not redrawn

    runs = load_runs(toy[0], ["toy"])
    key = figure_cache.fingerprint(runs, None)
    assert key == figure_cache.fingerprint(runs.sample(frac=1, random_state=0), None)  # order is not content
    changed = runs.copy()
    changed.loc[0, "final/eval/rel_l2"] *= 1 + 1e-12  # a resumed run that trained on
    assert figure_cache.fingerprint(changed, None) != key
    assert figure_cache.fingerprint(runs, "sqlite:///audit.db") != key  # tuning figures drawn too
    with monkeypatch.context() as m:
        m.setattr(figure_cache, "_code_digest", lambda: "other code")
        assert figure_cache.fingerprint(runs, None) != key

    folder = tmp_path / "cache"
    folder.mkdir()
    calls = []

    def draw():
        calls.append(1)
        (folder / "x.png").write_bytes(b"png")
        return [folder / "x.png"]

    for expected_calls, damage in ((1, None), (1, None), (2, lambda: (folder / "x.png").unlink()),
                                   (3, lambda: (folder / figure_cache.MANIFEST).write_text("{")),
                                   (4, "other key")):
        if callable(damage):
            damage()
        assert figure_cache.figures_of(folder, damage if isinstance(damage, str) else key, draw) == [folder / "x.png"]
        assert len(calls) == expected_calls, damage
