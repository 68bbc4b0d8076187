"""Errors that name a config field and the closest known name (the bottom floor: it imports
nothing of the project, so every package may use it)."""

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` did you mean 'x'?`` for the entry of ``known`` closest to ``name``, or ""."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def unknown_field_error(path: str, known: Iterable[str]) -> ValueError:
    """The error for ``config.<path>``, whose last key is none of ``known`` (its siblings)."""
    known = sorted(known)
    hint = did_you_mean(path.rpartition(".")[2], known)
    return ValueError(f"config.{path}: unknown field;{hint} known: {known}.")
