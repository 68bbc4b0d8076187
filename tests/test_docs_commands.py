"""Every command of this project that README.md and docs/*.md show (fenced ``bash`` or ``sh``
blocks) is checked, so that the pages cannot drift from the code:

- each command (`python -m <module> ...`) names a module that exists; each `--flag` it gives is
  one that the command's `--help` (absl: `--helpfull`) lists; an `attn_research.main` command's
  config file loads with its arguments and its `--config.<path>` overrides name fields of it; a
  sweep's study file loads; a pytest command's files exist;
- a cheap command (`--help`, `--print_config`, `--dry_run`, `--print-commands`) is run and must
  succeed;
- any other command of the project must sit in a block marked as a long run (`<!-- long -->` on
  the line before the block: a long run, or one that needs a long run's workdir), or in the
  README's set-up blocks (`<!-- main-command -->`, `<!-- test-command -->`), which CI runs.

Placeholders (`<name>`, `$VAR`, `[--optional]`, `...`) are not checked beyond the module.
Programs other than Python (pip, tensorboard, echo) are not this project's commands.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from attn_research.train.config import check_paths

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_MARKERS = ("<!-- long -->", "<!-- main-command -->", "<!-- test-command -->")
_CHEAP = ("--help", "--helpfull", "--print_config", "--dry_run", "--print-commands")
_SEPARATORS = ("&&", "||", "|", ";")


@dataclasses.dataclass(frozen=True)
class Command:
    where: str  # page:line of the block
    module: str
    args: tuple[str, ...]
    marked: bool  # in a block marked long (or a set-up block)


def _blocks(path: pathlib.Path):
    """(line number, marked, text) of each bash/sh block of the page."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if re.fullmatch(r"```(bash|sh)\s*", lines[i]):
            before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            yield i + 1, before in _MARKERS, "\n".join(lines[i + 1 : end])
            i = end
        i += 1


def _segments(text: str):
    """The simple commands of a shell text, as token lists (comments and `\\` lines joined)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    segment: list[str] = []
    for token in lexer:
        if token in _SEPARATORS:
            if segment:
                yield segment
            segment = []
        else:
            segment.append(token)
    if segment:
        yield segment


def _commands() -> list[Command]:
    pages = [_ROOT / "README.md", *sorted((_ROOT / "docs").glob("*.md"))]
    found = []
    for page in pages:
        for line, marked, text in _blocks(page):
            for tokens in _segments(_join_lines(text)):
                while tokens and re.fullmatch(r"[A-Z_]+=\S*", tokens[0]):
                    tokens = tokens[1:]  # Environment assignments.
                if len(tokens) >= 3 and "python" in tokens[0] and tokens[1] == "-m":
                    where = f"{page.relative_to(_ROOT)}:{line}"
                    found.append(Command(where, tokens[2], tuple(tokens[3:]), marked))
    return found


def _join_lines(text: str) -> str:
    """One shell command per line: continuation lines joined, a ';' starting each next line
    (after the comment that may end the line before)."""
    return "\n;".join(text.replace("\\\n", " ").splitlines())


_ALL = _commands()
_PROJECT = [c for c in _ALL if c.module.split(".")[0] in ("attn_research", "experiments")]


def _placeholder(text: str) -> bool:
    return any(mark in text for mark in ("<", "$", "..."))


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _ran(result: subprocess.CompletedProcess, args: tuple[str, ...]) -> bool:
    """Success; absl's --help and --helpfull exit 1 after printing the flags."""
    shown_help = {"--help", "--helpfull"} & set(args) and "flags:" in result.stdout
    return result.returncode == 0 or bool(shown_help)


@functools.cache
def _flag_names(module: str) -> frozenset[str]:
    """The flags `python -m module --help` lists (absl: `--helpfull`)."""
    text = _run(module, "--help").stdout
    if "--helpfull" in text:  # absl: --help lists the module's own flags only.
        text = _run(module, "--helpfull").stdout
    return frozenset({"help", "helpfull", *re.findall(r"--(?:\[no\])?([A-Za-z][\w.-]*)", text)})


def _given_flags(args: tuple[str, ...]):
    for arg in args:
        arg = arg.strip("[]")
        if arg.startswith("--") and not arg.startswith("--config."):
            yield arg[2:].split("=")[0]


def _check_config(command: Command) -> None:
    args = [a.strip("[]") for a in command.args]
    spec = None
    for i, arg in enumerate(args):
        if arg == "--config":
            spec = args[i + 1]
        elif arg.startswith("--config="):
            spec = arg.partition("=")[2]
    assert spec, f"{command.where}: attn_research.main without --config"
    if _placeholder(spec):
        return
    path, _, arg = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("_docs_config", _ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    config = module.get_config(arg or None)
    overrides = [a[len("--config.") :].split("=")[0] for a in args if a.startswith("--config.")]
    check_paths(config, [o for o in overrides if not _placeholder(o)])


def test_the_pages_have_commands_of_each_kind():
    assert {c.module for c in _PROJECT} >= {
        "attn_research.main",
        "attn_research.translate",
        "experiments.sweep",
    }
    assert any(not c.marked for c in _PROJECT) and any(c.marked for c in _PROJECT)


@pytest.mark.parametrize("command", _ALL, ids=lambda c: f"{c.where}:{c.module}")
def test_command_parses(command):
    assert importlib.util.find_spec(command.module), f"{command.where}: no module {command.module}"
    if command.module == "pytest":
        for arg in command.args:
            if arg.startswith("tests"):
                assert list(_ROOT.glob(arg)), f"{command.where}: no test file {arg}"
        return
    if command not in _PROJECT:
        return
    known = _flag_names(command.module)
    for flag in _given_flags(command.args):
        if flag and not _placeholder(flag):
            assert flag in known or flag.removeprefix("no") in known, (
                f"{command.where}: python -m {command.module} has no flag --{flag}"
            )
    if command.module == "attn_research.main":
        _check_config(command)
    if command.module == "experiments.sweep" and not _placeholder(command.args[0]):
        from experiments import sweep  # pylint: disable=import-outside-toplevel

        os.chdir(_ROOT)
        sweep.load_study(command.args[0])


@pytest.mark.parametrize("command", _PROJECT, ids=lambda c: f"{c.where}:{c.module}")
def test_command_runs_or_is_marked_long(command):
    if not any(flag in command.args for flag in _CHEAP):
        assert command.marked, (
            f"{command.where}: `python -m {command.module} {shlex.join(command.args)}` is neither "
            "cheap (--help, --print_config, --dry_run) nor in a block marked <!-- long -->"
        )
        return
    result = _run(command.module, *command.args)
    assert _ran(result, command.args), f"{command.where}: failed:\n{result.stderr[-3000:]}"
