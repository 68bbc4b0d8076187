"""Parsing of the config-file argument string: `translate.py:attention=local,window=32,tiny`.

`get_config(arg)` receives the text after the colon; `parse_arg` types it by the defaults that
the config declares, so a typo fails instead of selecting the default:

    def get_config(arg=None):
      arg = parse_arg(arg, attention='dense', window=0, tiny=False)

A bare word (`tiny`) sets a boolean default to True.
"""

from typing import Any

import ml_collections

_TRUE = ("1", "true", "yes")
_FALSE = ("0", "false", "no")


def _convert(key: str, text: str, default: Any) -> Any:
    """Converts `text` to the type of `default`, raising ValueError naming `key`."""
    if isinstance(default, bool):
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"Config arg {key!r}: expected a boolean, got {text!r}.")
    if isinstance(default, (int, float)):
        try:
            return type(default)(text)
        except ValueError:
            raise ValueError(
                f"Config arg {key!r}: expected {type(default).__name__}, got {text!r}."
            ) from None
    if isinstance(default, str):
        return text
    raise ValueError(f"Config arg {key!r}: default {default!r} must be a bool, int, float or str.")


def parse_arg(arg: str | None, **defaults: Any) -> ml_collections.ConfigDict:
    """Parses `arg` ("attention=local,window=32,tiny"; None or "": the defaults) into a ConfigDict
    with every key of `defaults` (bool, int, float or str), typed by them.

    Raises:
      ValueError: for a key not in `defaults`, a value of the wrong type, a bare word whose
        default is not a boolean, or a key given twice.
    """
    result = dict(defaults)
    seen = set()
    for item in (arg or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, text = item.partition("=")
        key = key.strip()
        if key not in defaults:
            raise ValueError(f"Unknown config arg {key!r}; known: {sorted(defaults)}.")
        if key in seen:
            raise ValueError(f"Config arg {key!r} given twice.")
        seen.add(key)
        if sep:
            result[key] = _convert(key, text.strip(), defaults[key])
        elif isinstance(defaults[key], bool):
            result[key] = True
        else:
            raise ValueError(f"Config arg {key!r} needs a value ({key}=...).")
    return ml_collections.ConfigDict(result)
