"""One job per folder: an exclusive lock that a dead holder does not keep.

A training run holds its output folder and an extraction holds its feature cache with
``FolderLock``: a second job on the same folder stops at once with an error that names the
folder and the holder (host, process id, command, start time). The lock is an operating-system
lock (``fcntl.flock``) on ``<folder>/.speechmapper.lock``: it is released when the holder's
process ends, however it ends (``kill -9`` included), so a restarted job is never blocked by a
job that is gone. The file itself stays; it only describes the last holder.

Authors
-------
speechmapper developers, 2026
"""

import datetime
import json
import os
import socket
import sys

LOCK_FILE = ".speechmapper.lock"

# Descriptors of the locks this process holds. A forked child (e.g. a DataLoader worker) closes
# its copies at once, so that the lock dies with its holder, not with the holder's children.
_HELD_FDS = set()


def _close_in_child():
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


class FolderLockedError(RuntimeError):
    """The folder is held by another live job."""


class FolderLock:
    """An exclusive, process-lifetime lock on a folder (a context manager).

    Arguments
    ---------
    folder : str or os.PathLike
        The folder to hold (created if missing).
    purpose : str
        What the holder does there (e.g. ``"training"``, ``"feature extraction"``); it is part
        of the message a second job gets.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with FolderLock(folder, "training"):
    ...     try:
    ...         FolderLock(folder, "training").acquire()
    ...     except FolderLockedError as err:
    ...         print("held" in str(err))
    True
    >>> with FolderLock(folder, "training") as lock:  # released: free again
    ...     lock.held
    True
    """

    def __init__(self, folder, purpose="a job"):
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)
        self.purpose = purpose
        self._fd = None

    @property
    def held(self):
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self):
        """Take the lock, or raise ``FolderLockedError`` naming the holder; returns self."""
        import fcntl

        if self._fd is not None:
            return self
        os.makedirs(self.folder, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read_holder(fd))
            os.close(fd)
            raise FolderLockedError(
                f"{self.folder} is held by another job ({holder}); two jobs writing into one "
                f"folder would interleave their files. Wait for it to finish, stop it, or give "
                f"this {self.purpose} another folder."
            ) from None
        except BaseException:
            os.close(fd)
            raise
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "purpose": self.purpose,
            "command": " ".join(sys.argv),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        self._fd = fd
        _HELD_FDS.add(fd)
        return self

    def release(self):
        """Release the lock (the file stays, describing the last holder)."""
        if self._fd is not None:
            import fcntl

            _HELD_FDS.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, exc_type, exc, tb):
        self.release()


def _read_holder(fd):
    try:
        data = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
        return json.loads(data) if data.strip() else {}
    except (OSError, ValueError):
        return {}


def _describe(holder):
    if not holder:
        return "holder unknown"
    parts = [f"pid {holder.get('pid')} on {holder.get('host')}"]
    if holder.get("purpose"):
        parts.append(str(holder["purpose"]))
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    if holder.get("command"):
        parts.append(f"command: {holder['command']}")
    return ", ".join(parts)
