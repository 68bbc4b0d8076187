"""Text input as lines of UTF-8, refused with the place of the first byte that is not.

Every reader of user text goes through `decode_lines`: the corpus files of training
(``data.translation``) and the sentences ``translate`` reads from a file or stdin. Undecodable
input is a ValueError naming its source, line, column and byte, never a string with surrogates
that a library (sentencepiece) fails on later.
"""

from __future__ import annotations

import io
import os

_CONVERT_HINT = "convert it, e.g. `iconv -f latin1 -t utf-8`"


def decode_lines(raw: bytes, name: str) -> list[str]:
    """The lines of `raw` (UTF-8) without their ``\\n``, ``\\r\\n`` or ``\\r`` ends.

    A UTF-8 byte-order mark at the start is dropped.

    Args:
      raw: the bytes of a file or stream.
      name: names it in the error (a path, or ``<stdin>``).

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
