"""A report folder's figures are reused when nothing they are drawn from has changed: the same runs with the
same outcomes and summaries, and the same code that draws them. Drawing every figure (PNG and PDF) is most of a
report's time (minutes for a full study here), and `sfli results` rebuilds the report of every study that `sfli
run` has just reported."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

MANIFEST = "figures.json"  # in the report folder: the fingerprint and the figure files drawn for it
_CODE = [Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "sfli_core"]


def _code_digest() -> str:
    """SHA-256 of the analysis and sfli_core sources (any change to how a figure is drawn or computed)."""
    digest = hashlib.sha256()
    for folder in _CODE:
        for path in sorted(folder.rglob("*.py")):
            digest.update(path.relative_to(folder.parent).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def fingerprint(runs: pd.DataFrame, audit: str | None) -> str:
    """What a report's figures are drawn from: each run's id, status and summary metrics (a resumed run that
    trained on changes them), whether tuning figures are drawn, and the code."""
    frame = runs[["run_id", "status", *runs.select_dtypes("number").columns]].sort_values("run_id")
    digest = hashlib.sha256(frame.to_csv(index=False, float_format="%.17g").encode())
    digest.update(f"tuning={audit is not None}".encode())
    digest.update(_code_digest().encode())
    return digest.hexdigest()


def drawn(out: Path, key: str) -> list[Path] | None:
    """The figure files in ``out`` drawn for ``key``, when the folder's manifest names ``key`` and every file it
    lists exists; else None."""
    try:
        recorded = json.loads((out / MANIFEST).read_text())
        files = [out / name for name in recorded["files"]]
        if recorded["fingerprint"] == key and all(f.exists() for f in files):
            return files
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no manifest or a damaged one: draw
    return None


def figures_of(out: Path, key: str, draw: Callable[[], list[Path]]) -> list[Path]:
    """The figure files in ``out`` drawn for ``key``: reused when :func:`drawn`, else drawn by ``draw()`` and the
    manifest rewritten."""
    files = drawn(out, key)
    if files is not None:
        return files
    manifest = out / MANIFEST
    manifest.unlink(missing_ok=True)  # a report killed while drawing leaves no manifest that claims its files
    files = draw()
    manifest.write_text(json.dumps({"fingerprint": key, "files": [f.relative_to(out).as_posix() for f in files]}))
    return files
