"""Tests of ``speechmapper_plugin.utils.locks`` (one job per folder)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from speechmapper_plugin.utils.locks import LOCK_FILE, FolderLock, FolderLockedError

HOLD = (
    "import sys, time\n"
    "from speechmapper_plugin.utils.locks import FolderLock\n"
    "lock = FolderLock(sys.argv[1], 'training').acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def _holder(folder):
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_job_is_refused_with_the_folder_and_the_holder(tmp_path):
    proc = _holder(tmp_path)
    try:
        with pytest.raises(FolderLockedError) as err:
            FolderLock(tmp_path, "feature extraction").acquire()
        message = str(err.value)
        assert str(tmp_path) in message and f"pid {proc.pid}" in message
        assert "training" in message and "feature extraction" in message
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_does_not_keep_the_lock(tmp_path):
    proc = _holder(tmp_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_FILE).exists()  # the file stays, the lock does not
    with FolderLock(tmp_path, "training") as lock:
        assert lock.held
        assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_FILE).read_text()


def test_release_and_reacquire_in_one_process(tmp_path):
    lock = FolderLock(tmp_path / "new", "training")
    assert lock.acquire() is lock and lock.acquire().held  # idempotent
    lock.release()
    assert not lock.held
    start = time.time()
    with FolderLock(tmp_path / "new"):
        pass
    assert time.time() - start < 5


HOLD_WITH_CHILD = (
    "import os, sys, time\n"
    "from speechmapper_plugin.utils.locks import FolderLock\n"
    "lock = FolderLock(sys.argv[1], 'extraction').acquire()\n"
    "if os.fork() == 0:\n"
    "    time.sleep(20)\n"
    "    os._exit(0)\n"
    "print('held', flush=True)\n"
    "time.sleep(60)\n"
)


def test_forked_children_do_not_keep_the_lock_after_the_holder_dies(tmp_path):
    """A killed job whose loader workers still run must not block its restart."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_WITH_CHILD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    with pytest.raises(FolderLockedError):
        FolderLock(tmp_path).acquire()
    os.kill(proc.pid, signal.SIGKILL)  # the forked child lives on
    proc.wait()
    with FolderLock(tmp_path) as lock:
        assert lock.held
