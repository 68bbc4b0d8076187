"""A registry of named pieces (positions rules, scores, kernels, presets) that declare their
keyword options, so that presets route options to an axis without reflection."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered piece and its declared options (``options`` None: those of every other
    entry of the registry, for a piece that hands them on, such as the ``auto`` kernel)."""

    item: T
    options: tuple[str, ...] | None = ()
    required: tuple[str, ...] = ()


class Registry(Mapping[str, T], Generic[T]):
    """Name -> piece; a second piece of one name, or an unknown name, is a ValueError."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, Entry[T]] = {}

    def register(
        self,
        name: str,
        item: T,
        *,
        options: tuple[str, ...] | None = (),
        required: tuple[str, ...] = (),
    ) -> T:
        """Adds ``item`` as ``name``, taking the keyword ``options`` (``required`` among them)."""
        if name in self._entries:
            raise ValueError(f"{self.what} {name!r} is already registered")
        if options is not None and not set(required) <= set(options):
            raise ValueError(f"{self.what} {name!r}: required {required} not among {options}")
        self._entries[name] = Entry(item, None if options is None else tuple(options), required)
        return item

    def unregister(self, name: str) -> None:
        """Removes ``name`` (for tests that register a piece of their own)."""
        self.entry(name)
        del self._entries[name]

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; registered: {sorted(self._entries)}")
        return self._entries[name]

    def options(self, name: str) -> tuple[str, ...]:
        """The keyword options that ``name`` takes."""
        declared = self.entry(name).options
        if declared is not None:
            return declared
        others = (self._entries[o].options or () for o in self._entries if o != name)
        return tuple(sorted({option for options in others for option in options}))

    def required(self, name: str) -> tuple[str, ...]:
        return self.entry(name).required

    def __getitem__(self, name: str) -> T:
        return self.entry(name).item

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries
