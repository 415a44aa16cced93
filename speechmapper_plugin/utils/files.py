"""Atomic file writes: a crash never leaves a half-written result, manifest or log summary.

Authors
-------
speechmapper developers, 2026
"""

import json
import os


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    Arguments
    ---------
    path : str
        Destination; parent folders are created.
    text : str
        Content (UTF-8).

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "a", "b.txt")
    >>> atomic_write_text(p, "hello"); open(p).read()
    'hello'
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path, obj):
    """Write ``obj`` as indented UTF-8 JSON, atomically.

    Example
    -------
    >>> import tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "r.json")
    >>> write_json(p, {"wer": 12.5}); json.load(open(p))
    {'wer': 12.5}
    """
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
