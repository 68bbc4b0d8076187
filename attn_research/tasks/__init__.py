"""Registry of tasks by `config.task`: a task module calls ``register_task('translate',
TranslationTask)`` when imported (the experiment config imports it, so the trainer imports no
model or dataset), and `get_task` builds it."""

from typing import Callable

from attn_research.tasks.base import Task

_FACTORIES: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Registers `factory` (e.g. a Task subclass) under `name`; re-registering replaces it."""
    _FACTORIES[name] = factory


def get_task(name: str) -> Task:
    """Builds the task registered as `name`; ValueError naming config.task if there is none."""
    if name not in _FACTORIES:
        raise ValueError(f"config.task: unknown task {name!r}; registered: {sorted(_FACTORIES)}.")
    return _FACTORIES[name]()


__all__ = ["Task", "get_task", "register_task"]
