"""Text input as lines of UTF-8 (corpus files, ``translate``'s input): undecodable input is a
ValueError naming its source, line, column and byte."""

from __future__ import annotations

import io
import os

_CONVERT_HINT = "convert it, e.g. `iconv -f latin1 -t utf-8`"


def decode_lines(raw: bytes, name: str) -> list[str]:
    """The lines of `raw` (UTF-8, a leading byte-order mark dropped) without their line ends;
    `name` (a path, ``<stdin>``) names it in errors.

    Raises:
      ValueError: ``<name>:<line>: not UTF-8 (...: byte b'\\xe9' at column <c>)``.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise ValueError(
            f"{name}:{line}: not UTF-8 ({error.reason}: byte {raw[error.start : error.end]!r} "
            f"at column {column}); {_CONVERT_HINT}"
        ) from None
    text = text.removeprefix("\ufeff")
    return [line.rstrip("\n").rstrip("\r") for line in io.StringIO(text, newline=None)]


def read_lines(path: str) -> list[str]:
    """`decode_lines` of the file at `path`.

    Raises:
      ValueError: naming the path if it is missing, unreadable or not UTF-8.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ValueError(f"{path}: cannot read it ({error.strerror})") from None
    return decode_lines(raw, path)
