"""The ``sfli`` command line: a thin router over library functions.

Exit codes: 0 success, 1 a run or study failed, 2 invalid input (configuration, study file, arguments).
"""

from __future__ import annotations

import argparse
import os
import sys

from analysis.drawing import available_workers
from sfli_core.config import ConfigError

from .errors import StudyError


def _progress(total: int, headline: float):
    from sfli_core import keys

    tty = sys.stdout.isatty()

    def show(record: dict, trainer) -> None:
        ranks = [record.get(keys.rank_key(headline, l)) for l in range(1, trainer.n_layers + 1)]
        rank_text = "" if ranks[0] is None else f"  ε-rank {ranks}"
        line = (f"step {int(record[keys.STEP]):>6}/{total}  loss {record[keys.TRAIN_LOSS]:.3e}  "
                f"rel_l2 {record[keys.EVAL_REL_L2]:.3e}{rank_text}  {record[keys.TIME_WALL]:.1f} s")
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)

    return show


def cmd_train(args) -> int:
    """Run one run configuration in-process and print its summary."""
    from sfli_core.config import load_run_config
    from sfli_core.trainer import Trainer

    cfg = load_run_config(args.config, args.set)
    print(f"task {cfg.task.name}  model {cfg.model.arch} {cfg.model.depth}×{cfg.model.width} {cfg.model.activation}"
          f"  init {cfg.init.name} (scale {cfg.init.scale})  seed {cfg.seed}")
    trainer = Trainer(cfg, callback=_progress(cfg.train.total_steps, cfg.rank.headline))
    result = trainer.run()
    if sys.stdout.isatty():
        print()
    print(result.describe(cfg.rank.headline))
    return 0


def cmd_validate(args) -> int:
    from sfli_core.record import Phase

    from .advice import study_warnings
    from .study import load_study
    from .terminal import plural, say
    from .tuning import search_plan

    study = load_study(args.study, smoke=args.smoke, overrides=args.set)
    points = study.grid_points()
    for arm, spec in study.arms.items():
        cfg = study.run_config(arm, grid_point=points[0])
        knobs = ", ".join(spec.search) if spec.search else "none"
        say(f"arm {arm}: init {cfg.init.name}, {cfg.model.arch} {cfg.model.depth}×{cfg.model.width}, "
            f"{cfg.train.total_steps} steps; searched: {knobs}")
    if study.grid:
        say(f"grid: {plural(len(points), 'point')}: "
            f"{', '.join(study.variant_id(p) for p in points)}")
    plan, warnings = search_plan(study)
    say("\n".join(plan))
    for warning in warnings + study_warnings(study, args.study):
        say(f"warning: {warning}")
    say(f"{args.study}: valid. {study.expected_trials(Phase.SEARCH)} search trials on seeds {study.search.seeds}, "
        f"{study.expected_trials(Phase.EVALUATE)} evaluate runs on seeds {study.evaluate.seeds}; "
        f"resources.pack: {study.resources.pack}")
    return 0


def cmd_list(args) -> int:
    """What is registered: tasks, architectures, initialisations, activations."""
    from sfli_core.catalogue import catalogue

    print(catalogue())
    return 0


def cmd_run(args) -> int:
    from .runner import start_study

    state = start_study(args.study, smoke=args.smoke, overrides=args.set, address=args.address,
                        uri=args.tracking_uri, runs=args.runs_dir, num_cpus=args.num_cpus, storage=args.storage)
    return _report_after(state, args.runs_dir)


def _report_after(state, runs: str | None) -> int:
    """A finished study ends with its report printed (and recorded on its parent run, once per execution); an
    interrupted one exits 130 (as after Ctrl-C), a failed one 1."""
    from .reporting import final_report
    from .state import StudyStatus

    if state.status != StudyStatus.FINISHED:
        return 130 if state.status == StudyStatus.INTERRUPTED else 1
    print("\n" + final_report(state, runs, available_workers()).terminal)
    return 0


def cmd_resume(args) -> int:
    from .runner import resume_study

    return _report_after(resume_study(args.name, runs=args.runs_dir, address=args.address,
                                      num_cpus=args.num_cpus), args.runs_dir)


def cmd_status(args) -> int:
    from .runner import study_status

    print(study_status(args.name, runs=args.runs_dir))
    return 0


def cmd_trial(args) -> int:
    """One run of a study's arm in-process (no Ray, no MLflow), for debugging."""
    from sfli_core.trainer import Trainer

    from .study import load_study

    study = load_study(args.study, smoke=args.smoke)
    if args.arm not in study.arms:
        raise ConfigError(f"{args.study}: unknown arm '{args.arm}'; valid: {', '.join(study.arms)}")
    from sfli_core.config import RunConfig, apply_overrides, validate

    data = study.run_config(args.arm, seed=args.seed).model_dump(mode="json")
    cfg = validate(RunConfig, apply_overrides(data, args.set), f"{args.study} arm {args.arm}")
    trainer = Trainer(cfg, callback=_progress(cfg.train.total_steps, cfg.rank.headline))
    print(trainer.run().describe(cfg.rank.headline))
    return 0


def cmd_ui(args) -> int:
    from .tracking import check_store, runs_dir, tracking_uri
    from .ui import check_port, serve_ui

    folder = runs_dir(args.runs_dir)
    uri = tracking_uri(args.tracking_uri, folder)
    check_port(args.port)
    check_store(uri)  # a typo in --runs-dir must not serve a new, empty store
    return serve_ui(uri, folder, args.port)


def cmd_report(args) -> int:
    from .reporting import report

    print(report(args.study, all_studies=args.all, out=args.out, runs=args.runs_dir, uri=args.tracking_uri,
                 with_figures=not args.no_figures, execution=args.execution, log=args.log,
                 workers=available_workers()).terminal)
    return 0


def cmd_results(args) -> int:
    from .reporting import results

    print(results(args.out, runs=args.runs_dir, uri=args.tracking_uri, studies_dir=args.studies,
                  catalogue=args.catalogue, workers=available_workers()))
    return 0


def _count(text: str) -> int:
    """A positive whole number (``--num-cpus``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number ≥ 1, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a TCP port 1–65535, got {text!r}")
    return value


def _study_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--smoke", action="store_true", help="use the study's smoke profile (tiny budgets)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a study field, e.g. --set search.trials=8 (repeatable)")


def _where_args(p: argparse.ArgumentParser, tracking: bool = True) -> None:
    p.add_argument("--runs-dir", default=None, help="runs folder (default $SFLI_RUNS_DIR or ./sfli_runs)")
    p.add_argument("--address", default=None, help="Ray cluster address (default $RAY_ADDRESS, else local)")
    p.add_argument("--num-cpus", type=_count, default=None, help="CPUs of a local Ray instance (default: all)")
    if tracking:
        p.add_argument("--tracking-uri", default=None,
                       help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else SQLite in the runs folder)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _library_commands(sub)
    _study_commands(sub)
    _output_commands(sub)
    return parser


def _library_commands(sub) -> None:
    """Commands on one run or the registries, in-process."""
    p = sub.add_parser("train", help="run one run configuration (YAML) in-process and print its summary")
    p.add_argument("config", help="run-configuration YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.lr=1e-3 (repeatable)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("list", help="what is registered: tasks, architectures, initialisations, activations")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("trial", help="one run of a study arm in-process (no Ray, no MLflow)")
    p.add_argument("study")
    p.add_argument("--arm", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a run field")
    p.set_defaults(func=cmd_trial)


def _study_commands(sub) -> None:
    """Commands that check, run, resume and inspect a study."""
    p = sub.add_parser("validate", help="check a study file")
    p.add_argument("study")
    _study_args(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a study: search, then paired evaluation, recorded in MLflow")
    p.add_argument("study")
    _study_args(p)
    _where_args(p)
    p.add_argument("--storage", default=None,
                   help="Ray Tune results and checkpoints: a shared path or bucket URI (default <runs>/ray)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="continue an interrupted study")
    p.add_argument("name")
    _where_args(p, tracking=False)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("status", help="phases and runs of a study")
    p.add_argument("name")
    p.add_argument("--runs-dir", default=None)
    p.set_defaults(func=cmd_status)


def _output_commands(sub) -> None:
    """Commands that read recorded studies: reports, the results page, the MLflow UI."""
    p = sub.add_parser("report", help="paired speed-up tables and figures of a recorded study (or --all)")
    p.add_argument("study", nargs="?", help="study name (its MLflow experiment)")
    p.add_argument("--all", action="store_true", help="aggregate every recorded study into one table")
    p.add_argument("--out", default=None, help="output folder (default: <runs>/reports/<study or all>)")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--log", action="store_true",
                   help="also record the report on the study's evaluate parent run, as a new version")
    p.add_argument("--execution", type=int, default=None,
                   help="which execution of the study (a finished study run again is a new one; default: latest)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("results", help="regenerate the results page (docs/results.md): the papers' claims "
                                       "judged, every catalogued study's tables and figures")
    p.add_argument("--out", default="docs/results.md", help="the page to write (figures go beside it)")
    p.add_argument("--studies", default="studies", help="folder of the study files (their descriptions)")
    p.add_argument("--catalogue", default=None,
                   help="a YAML file of your own studies and claims, added to analysis/catalogue.yaml's")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("ui", help="the MLflow UI on the default store, bound to 127.0.0.1")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--tracking-uri", default=None)
    p.add_argument("--port", type=_port, default=5000)
    p.set_defaults(func=cmd_ui)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: the user's modules in the current folder import
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except StudyError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader went away (`sfli status | head -1`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second one at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
