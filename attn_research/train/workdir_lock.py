"""One run per workdir: `<workdir>/lock` holds its run's pid and host under an exclusive
`fcntl.flock`, which the kernel releases however the process ends (a dead run's lock is taken
over). Only process 0 locks; URL workdirs (gs://...) are not locked.
"""

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator

import jax
from absl import logging

LOCK_NAME = "lock"


@contextlib.contextmanager
def hold(workdir: str) -> Iterator[None]:
    """Holds the lock of the existing `workdir` for the duration of the `with` block.

    Raises:
      ValueError: naming the process (pid, host) that holds the lock.
    """
    if jax.process_index() != 0 or "://" in workdir:
        yield
        return
    path = os.path.join(workdir, LOCK_NAME)
    with open(path, "a+", encoding="utf-8") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise ValueError(
                f"workdir {workdir!r} is in use by the run of process {f.read().strip()} "
                f"(lock file {path}); wait for it to end, stop it, or use another workdir."
            ) from None
        f.seek(0)
        stale = f.read().strip()
        if stale:
            logging.warning(
                "Taking over the stale lock of %s, which ended without releasing it.", stale
            )
        f.truncate(0)
        f.write(f"{os.getpid()} on {socket.gethostname()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)  # Released: a lock file with no holder, left in place (no race).
