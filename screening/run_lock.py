"""One run at a time in an output folder.

The lock is an ``fcntl.flock`` on ``.lock`` inside the folder: the operating system drops it
when the holding process ends, however it ends, so a lock left by a killed run never blocks
the next one. The file names its holder (host, pid, start time) for the refusal message. Locks
are held per process and re-entrant (a retried task of the same run takes the lock it holds).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
from pathlib import Path

LOCK_NAME = ".lock"
_HELD: dict[str, int] = {}  # resolved folder -> open file descriptor holding the lock


class FolderLockedError(FileExistsError):
    """Another live process is running in this output folder."""


def acquire(folder: Path) -> None:
    """Take the folder's lock (creating the folder), or raise :class:`FolderLockedError` naming
    the holder at once."""
    key = str(folder.resolve())
    if key in _HELD:
        return
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise FolderLockedError(
            f"{folder} is in use by another run ({holder}); wait for it to finish, or choose another --out"
        ) from None
    me = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me).encode(), 0)
    _HELD[key] = fd


def release(folder: Path) -> None:
    """Drop the lock if this process holds it (the file stays: removing it could let a third
    process lock a new file while a second still waits on the old one)."""
    fd = _HELD.pop(str(folder.resolve()), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return "holder unknown"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('since', '?')}"
