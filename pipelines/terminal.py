"""Lines for the person who started a command, read at :data:`WIDTH` columns (the project's terminal width)."""

from __future__ import annotations

import textwrap

from sfli_core.text import WIDTH


def say(text: str) -> None:
    """Print ``text`` with each of its lines wrapped at :data:`WIDTH` columns between words, a continuation
    indented four spaces beyond its line's own indent (a word longer than a line, a path or URI, stays whole)."""
    print("\n".join(_wrapped(line) for line in text.split("\n")), flush=True)


def plural(n: int, noun: str) -> str:
    """'1 trial', '16 trials'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _wrapped(line: str) -> str:
    if len(line) <= WIDTH:
        return line
    indent = line[:len(line) - len(line.lstrip())]
    return textwrap.fill(line, WIDTH, subsequent_indent=indent + "    ", break_on_hyphens=False,
                         break_long_words=False)
