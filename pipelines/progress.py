"""A phase's progress for the person who started the study: trials done / running / pending (pruned, stopped and
errored apart), runs done per arm, a search's best objective so far, elapsed time and an estimate of the time
left.

On a terminal it is one tqdm bar per phase, updated in place; otherwise (a log file, a pipe, CI) a line when
the phase starts, at most one progress line a minute, and a line when it ends — so a log of the quick start
holds a handful of lines, not one every two seconds.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

from ray import tune
from ray.tune.experiment import Trial
from tqdm import tqdm

from sfli_core import record

from .stop import StopRequest
from .terminal import say

LOG_EVERY_S = 60.0  # a progress line at most this often when the output is not a terminal
BAR_EVERY_S = 0.5
# a bar of fixed width, then trials done, elapsed < left, and the counts: readable at 120 columns
BAR = "{desc} {bar:12} {n_fmt}/{total_fmt} trials {elapsed}<{remaining}{postfix}"


class Progress(tune.Callback):
    """Tune callback of one phase (``label``: 'search sfli', 'evaluate'), ``expected`` trials; ``pruning``:
    successive halving may end trials early; ``searching``: the phase minimises the objective, so its best so far
    is shown (an evaluation's trials are different arms and grid points: no best among them).

    The elapsed time shown is this driver's, from :attr:`t0` (when it started the study, set before each phase),
    and the time left is estimated from the trials it finished itself: Tune restores a resumed phase's callback
    from its pickle, and the first driver's clock and trials would count the time the study lay stopped.

    A trial Tune ended without its final result was pruned (by successive halving) or stopped (by the
    study's stop request, or in a phase without pruning): a pruned trial is done, a stopped one continues
    when the study is resumed."""

    t0 = 0.0  # when this driver started the study (time.time()); set by the driver before each phase
    searching = True  # for callbacks pickled with an experiment before the attribute existed

    def __init__(self, label: str, expected: int, pruning: bool = False, terminal: bool | None = None,
                 searching: bool = True):
        self.label, self.expected, self.pruning, self.searching = label, expected, pruning, searching
        self.pruned: set[str] = set()  # trials seen ended early before any stop request: pruned for good
        self.terminal = sys.stdout.isatty() if terminal is None else terminal
        self.started = self.last = time.time()
        self.done_before: int | None = None  # trials done when this driver took the phase on (first step)
        self.bar: tqdm | None = None

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks with the experiment: the bar (a stream and a lock) is not part of the state."""
        return {**self.__dict__, "bar": None}

    def __setstate__(self, state: dict) -> None:
        state.pop("t0", None)  # kept per callback before the driver's clock was the class's
        self.__dict__.update(state)

    def setup(self, **info) -> None:
        # the phase starts (again) in this driver; the first progress line of a log comes a minute in
        self.started = self.last = time.time()
        self.done_before = None
        if self.terminal:
            self.bar = tqdm(total=self.expected, desc=f"[{self.label}]", unit="trial", file=sys.stdout,
                            dynamic_ncols=True, leave=True, bar_format=BAR)
        else:
            print(f"[{self.label}] {self.expected} trials", file=sys.stdout, flush=True)

    def on_step_end(self, iteration: int, trials: list[Trial], **info) -> None:
        done = len(self.ended(trials)["done"])
        if self.done_before is None:  # a resumed phase's trials done before: not this driver's pace
            self.done_before = done
            if self.bar is not None:
                self.bar.initial = done  # tqdm's rate, and so its time left, counts from here
        every = BAR_EVERY_S if self.terminal else LOG_EVERY_S
        if time.time() - self.last >= every:
            self.show(trials)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info) -> None:
        if self.terminal:
            self.show(trials)

    def on_experiment_end(self, trials: list[Trial], **info) -> None:
        self.show(trials)
        if self.bar is not None:
            self.bar.close()

    def show(self, trials: list[Trial]) -> None:
        self.last = time.time()
        if self.bar is not None:
            self.bar.n = len(self.ended(trials)["done"])
            self.bar.set_postfix_str(self.summary(trials, with_time=False, short=True), refresh=True)
        else:
            say(f"[{self.label}] {self.summary(trials, with_time=True)}")

    def ended(self, trials: list[Trial]) -> dict[str, list[Trial]]:
        """The trials Tune ended: ``done`` (finished or pruned), ``finished`` (with their final result),
        ``pruned``, ``stopped`` (to continue on resume). Those ended early while no stop is requested are
        remembered as pruned, so that they stay pruned after one is."""
        ended = [t for t in trials if t.status == Trial.TERMINATED]
        finished = [t for t in ended if t.last_result.get(record.OBJECTIVE_FINAL)]
        cut = [t for t in ended if not t.last_result.get(record.OBJECTIVE_FINAL)]
        if self.pruning and not StopRequest.requested:
            self.pruned |= {t.trial_id for t in cut}
        return {"done": finished + [t for t in cut if t.trial_id in self.pruned], "finished": finished,
                "pruned": [t for t in cut if t.trial_id in self.pruned],
                "stopped": [t for t in cut if t.trial_id not in self.pruned]}

    def summary(self, trials: list[Trial], with_time: bool, short: bool = False) -> str:
        """'done 3 (pruned 1)  running 2  pending 11  errored 0  · sfli 3/8 xavier 2/8  · best objective 196.4',
        with the elapsed time and the estimate of what is left when ``with_time``; ``short``: beside a bar, which
        shows trials done and the times itself ('run 2 wait 11 err 0 pruned 1 · sfli 3/8 … · best 196.4')."""
        states = Counter(t.status for t in trials)
        ended = self.ended(trials)
        done = ended["done"]
        finals = [t.last_result.get(record.OBJECTIVE) for t in ended["finished"]]
        pending = states[Trial.PENDING] + max(0, self.expected - len(trials))
        pruned, stopped = len(ended["pruned"]), len(ended["stopped"])
        if short:
            text = (f"run {states[Trial.RUNNING]} wait {pending} err {states[Trial.ERROR]}"
                    + (f" pruned {pruned}" if pruned else "") + (f" stopped {stopped}" if stopped else ""))
        else:
            text = (f"done {len(done)}" + (f" (pruned {pruned})" if pruned else "")
                    + (f"  stopped {stopped}" if stopped else "")
                    + f"  running {states[Trial.RUNNING]}  pending {pending}  errored {states[Trial.ERROR]}")
        arms = arm_counts(trials, {t.trial_id for t in done})
        if len(arms) > 1:
            text += "  · " + " ".join(f"{arm} {n}/{total}" for arm, (n, total) in sorted(arms.items()))
        text += f"  · best{'' if short else ' objective'} {min(finals):.4g}" if finals and self.searching else ""
        if with_time:
            elapsed, finished_here = time.time() - self.started, len(done) - (self.done_before or 0)
            left = elapsed * (self.expected - len(done)) / finished_here if finished_here > 0 else None
            text += f"  · elapsed {time.time() - self.t0:.0f} s" + (f", about {left:.0f} s left in this phase"
                                                                    if left is not None and left > 0 else "")
        return text


def arm_counts(trials: list[Trial], done: set[str]) -> dict[str, tuple[int, int]]:
    """Per arm: (runs done, runs planned) among ``trials``, the runs of the trials whose ids are ``done`` done —
    a search trial is one run of its arm, an evaluate trial trains its members (arm, grid point, seed)."""
    counts: dict[str, list[int]] = {}
    for t in trials:
        members = t.config.get("members") or [[t.config.get("arm", "?")]]
        for member in members:
            n = counts.setdefault(str(member[0]), [0, 0])
            n[1] += 1
            n[0] += t.trial_id in done
    return {arm: (n[0], n[1]) for arm, n in counts.items()}
