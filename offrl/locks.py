"""One writer per folder: a run folder or a bench results folder is held by one process at a time.

The hold is an exclusive `fcntl.flock` on `<folder>/.lock`, taken without waiting. The kernel
drops it when its process ends, however it ends (kill -9 included), so no folder ever needs
cleaning by hand; the file itself stays and only says who held it last. flock is per host: do
not share one folder between machines over NFS.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

from offrl.errors import ConfigError

LOCK = ".lock"


def _holder() -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
    }


def _describe(text: str) -> str:
    try:
        held = json.loads(text)
        return f"pid {held['pid']} on {held['host']} since {held['since']} ({held['command']})"
    except (ValueError, KeyError, TypeError):  # its holder is still writing who it is
        return "another process"


@contextlib.contextmanager
def hold(folder: Path, what: str) -> Iterator[None]:
    """Hold `folder` (created if missing) for the duration; another holder is a ConfigError that
    names it. `what` names the folder's kind in the message ("run folder", "results folder")."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.pread(fd, 4096, 0).decode(errors="replace"))
            raise ConfigError(
                f"the {what} {folder} is in use by {holder}: wait for it to finish, stop it, "
                "or pass another folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
