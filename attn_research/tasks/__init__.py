"""Registry of tasks, looked up by `config.task`.

Task modules register a factory when imported:

    register_task('translate', TranslationTask)

and `get_task(config.task)` builds it. Importing a task module is the caller's business (an
experiment config imports the task it uses), which keeps the trainer free of model and dataset
imports.
"""

from typing import Callable

from attn_research.tasks.base import Task

_FACTORIES: dict[str, Callable[[], Task]] = {}


def register_task(name: str, factory: Callable[[], Task]) -> None:
    """Registers `factory` (e.g. a Task subclass) under `name`; re-registering replaces it."""
    _FACTORIES[name] = factory


def get_task(name: str) -> Task:
    """Builds the task registered as `name`.

    Raises:
      ValueError: naming config.task if no task of that name is registered.
    """
    if name not in _FACTORIES:
        raise ValueError(f"config.task: unknown task {name!r}; registered: {sorted(_FACTORIES)}.")
    return _FACTORIES[name]()


__all__ = ["Task", "get_task", "register_task"]
