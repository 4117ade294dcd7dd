"""`sfli validate`'s warnings beyond the search (pipelines.advice): a rank logged too rarely for a staircase,
and evaluation seeds another study of the folder trains on the same task."""

from __future__ import annotations

from pipelines.advice import rank_cadence, shared_seeds
from pipelines.cli import main
from pipelines.study import load_study
from tests.pipeline_helpers import write_study

ARMS = {"xavier": {"set": {"init.name": "xavier_normal"}}, "sfli": {"set": {"init.name": "sfli"}}}


def test_a_rank_logged_too_rarely_for_a_staircase_is_warned(tmp_path):
    def study(steps, log_every, every):
        path = write_study(tmp_path / f"s{steps}_{log_every}_{every}.yaml", "s", ARMS, steps=steps,
                           log_every=log_every)
        path.write_text(path.read_text().replace("rank:\n", f"rank:\n    every: {every}\n"))
        return load_study(str(path))

    # 1000 steps, logged every 50, ranked every 4th: 1000 // 200 + 1 = 6 ranked points
    assert "logged every 200 steps, 6 times in 1000 steps" in rank_cadence(study(1000, 50, 4))[0]
    assert rank_cadence(study(1000, 50, 1)) == []  # 21 ranked points
    assert rank_cadence(study(100, 50, 1)) == []  # too short a run for a staircase to matter


def test_evaluation_seeds_another_study_trains_on_the_same_task_are_warned(tmp_path, capsys):
    mine = write_study(tmp_path / "mine.yaml", "mine", ARMS, seeds=(0, 1, 2, 3))
    write_study(tmp_path / "chooser.yaml", "chooser", ARMS, seeds=(2, 3, 4))
    warnings = shared_seeds(load_study(str(mine)), mine)
    assert len(warnings) == 1
    assert warnings[0].startswith("evaluate.seeds [2, 3] are also seeds of study 'chooser' (chooser.yaml) on "
                                  "fit1d_multiscale")
    other_task = write_study(tmp_path / "chooser.yaml", "chooser", ARMS, seeds=(2, 3, 4))
    other_task.write_text(other_task.read_text().replace("fit1d_multiscale", "fit2d_multiscale"))
    assert shared_seeds(load_study(str(mine)), mine) == []  # another task: independent runs
    (tmp_path / "broken.yaml").write_text("name: [")  # not a study: skipped, not an error here
    write_study(tmp_path / "chooser.yaml", "chooser", ARMS, seeds=(10, 11))
    assert main(["validate", str(mine)]) == 0
    assert "also seeds of study" not in capsys.readouterr().out
    write_study(tmp_path / "chooser.yaml", "chooser", ARMS, seeds=(1,))
    assert main(["validate", str(mine)]) == 0
    assert "warning: evaluate.seeds [1] are also seeds of study 'chooser'" in capsys.readouterr().out
