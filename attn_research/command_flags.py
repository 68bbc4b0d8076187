"""The checks of the commands' flags, run while the flags are parsed, before any work: a wrong
value ends the command with an error naming the flag and what it must be; None is not checked.

    _BEAM = command_flags.checked(flags.DEFINE_integer("beam", None, "..."), at_least(1))
    parser.add_argument("--repeats", type=command_flags.argparse_type(int, at_least(1)))
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from absl import app, flags

# A check: the problem with a value, in words ("must be >= 1, got 0"), or None if it is fine.
Check = Callable[[Any], "str | None"]
_Holder = TypeVar("_Holder", bound=flags.FlagHolder)


def at_least(low: float) -> Check:
    """The value is a number >= `low` (``at_least(1)`` for counts, ``at_least(0)`` for indices)."""
    return lambda value: None if value >= low else f"must be >= {low}, got {value}"


def finite_at_least(low: float) -> Check:
    """The value is a finite float >= `low` (not NaN or infinite)."""
    return lambda value: (
        None if value >= low and value < float("inf") else f"must be a number >= {low}, got {value}"
    )


def existing_file(value: str) -> str | None:
    """The value is a readable file."""
    if not os.path.isfile(value):
        return f"file {value!r} does not exist"
    if not os.access(value, os.R_OK):
        return f"{value!r} is not readable"
    return None


def existing_directory(value: str) -> str | None:
    """The value is a directory."""
    return None if os.path.isdir(value) else f"directory {value!r} does not exist"


def new_file(value: str) -> str | None:
    """The value can be written as a file: not a directory, in a directory that exists and is
    writable (an existing file is replaced only once the command has succeeded)."""
    parent = os.path.dirname(os.path.abspath(value))
    if os.path.isdir(value):
        return f"{value!r} is a directory; give a file name"
    if not os.path.isdir(parent):
        return f"the directory {parent!r} does not exist"
    if not os.access(parent, os.W_OK):
        return f"the directory {parent!r} is not writable"
    return None


def creatable_file(value: str) -> str | None:
    """The value can be written as a file once its missing directories are made: not a
    directory, and its nearest existing ancestor is a writable directory."""
    if os.path.isdir(value):
        return f"{value!r} is a directory; give a file name"
    ancestor = os.path.dirname(os.path.abspath(value))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK):
        return f"{ancestor!r} is not a writable directory"
    return None


def new_directory(value: str) -> str | None:
    """The value is a writable directory, or one that can be made (its parent exists)."""
    if os.path.exists(value) and not os.path.isdir(value):
        return f"{value!r} is a file, not a directory"
    existing = value if os.path.isdir(value) else os.path.dirname(os.path.abspath(value))
    if not os.path.isdir(existing):
        return f"the directory {existing!r} does not exist"
    if not os.access(existing, os.W_OK):
        return f"the directory {existing!r} is not writable"
    return None


def problem(value: Any, *checks: Check) -> str | None:
    """The first problem that `checks` find with `value` (None: unset, or fine)."""
    if value is None:
        return None
    for check in checks:
        found = check(value)
        if found:
            return found
    return None


def checked(holder: _Holder, *checks: Check) -> _Holder:
    """Registers `checks` on an absl flag; returns its holder. A failing check stops flag
    parsing with ``flag --<name>=<value>: <problem>``."""

    def validate(value: Any) -> bool:
        found = problem(value, *checks)
        if found:
            raise flags.ValidationError(found)
        return True

    flags.register_validator(holder.name, validate)
    return holder


def argparse_type(convert: Callable[[str], Any], *checks: Check) -> Callable[[str], Any]:
    """An argparse ``type=``: `convert`, then `checks` (argparse names the flag in its error)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {getattr(convert, '__name__', 'a value')}, got {text!r}"
            ) from None
        found = problem(value, *checks)
        if found:
            raise argparse.ArgumentTypeError(found)
        return value

    return parse


def run_command(main: Callable[[list[str]], None], module_name: str, **run_options: Any) -> None:
    """Runs the absl command `main` of module `module_name` (``app.run``), the same as ``python -m``
    or as a console script: the module's flags become the program's key flags, so ``--help``
    lists them with the module's docstring.
    """
    module = sys.modules[module_name]
    for flag in flags.FLAGS.get_key_flags_for_module(module):
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    program = sys.modules["__main__"]
    program.__doc__ = program.__doc__ or module.__doc__
    app.run(main, **run_options)
