"""The ``sfli`` command line: a thin router over library functions.

Exit codes: 0 success, 1 a run or study failed, 2 invalid input (configuration, study file, arguments).
"""

from __future__ import annotations

import argparse
import sys

from sfli_core.config import ConfigError


def _progress(total: int, headline: float):
    from sfli_core import keys

    tty = sys.stdout.isatty()

    def show(record: dict, trainer) -> None:
        ranks = [record.get(keys.rank_key(headline, l)) for l in range(1, trainer.cfg.model.depth + 1)]
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
    trainer = Trainer(cfg, callback=_progress(cfg.train.steps, cfg.rank.headline))
    result = trainer.run()
    if sys.stdout.isatty():
        print()
    print(result.describe(cfg.rank.headline))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sfli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="run one run configuration (YAML) in-process and print its summary")
    p.add_argument("config", help="run-configuration YAML file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set train.lr=1e-3 (repeatable)")
    p.set_defaults(func=cmd_train)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
