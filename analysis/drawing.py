"""A report's figures drawn side by side, one worker process per free CPU (up to :data:`MAX_WORKERS`).

Drawing is CPU-bound matplotlib work that holds the GIL (text layout above all), so threads would not help;
a figure's inputs (frames, run histories, weights) are small to send. The workers fork from a server process
that has imported matplotlib and the figure code once (``forkserver`` with a preload): the process calling a
report may hold Ray's and MLflow's threads, which a plain ``fork`` would copy mid-flight.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver
from pathlib import Path

Job = tuple[Callable[..., list[Path]], tuple]  # a figure function of analysis.figures / analysis.tuning, its args
MAX_WORKERS = 8
MIN_JOBS = 4  # fewer figures than this are drawn here: a worker's start would cost more than it saves
_PRELOAD = ["analysis.figures", "analysis.tuning"]


def _draw(job: Job) -> list[Path]:
    fn, args = job
    return fn(*args)


def available_workers() -> int:
    """The CPUs this process may use, at most :data:`MAX_WORKERS`: what a command that draws a report passes as
    ``workers``. A library call draws in its own process unless asked: worker processes re-import the calling
    program's main module, which a script without a ``__main__`` guard would run again."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
    return min(cpus, MAX_WORKERS)


def _context():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def prepare(workers: int) -> None:
    """With ``workers`` ≥ 2, start the server the workers fork from now: it imports the figure code while the
    caller reads its runs."""
    if workers >= 2:
        _context()
        forkserver.ensure_running()


def draw_all(jobs: list[Job], workers: int = 1) -> list[Path]:
    """Every job's files, in the jobs' order: drawn by up to ``workers`` worker processes when that is ≥ 2 and
    there are at least :data:`MIN_JOBS` jobs, else in this process. A job's exception is raised here either
    way."""
    workers = min(workers, len(jobs))
    if workers < 2 or len(jobs) < MIN_JOBS:
        return [f for job in jobs for f in _draw(job)]
    pool = ProcessPoolExecutor(workers, mp_context=_context())
    try:
        return [f for files in pool.map(_draw, jobs) for f in files]
    finally:  # a failed figure or Ctrl-C: the figures not started yet are not drawn, only waited out
        pool.shutdown(cancel_futures=True)
