"""Checks shared by the tests of the dataset prepare scripts (tests/recipes/test_*_prepare.py).

Every prepare script writes, in its save folder, one ``<split>.csv`` manifest, one
``<split>.skipped.tsv`` (``id<TAB>reason<TAB>detail`` a skipped row) per split and
``prepare_summary.json``; a second call with the same arguments reuses them. The fixtures that
write each dataset's own layout stay in the test files; only what reads and compares the outputs
is here. This folder has no ``__init__.py``, so pytest (default "prepend" import mode) puts it
on ``sys.path`` and the test files import this module by its name.
"""

import csv
import json
import os
import pathlib

import pytest


def read_csv(path):
    """The header and the rows (lists of strings) of the csv file ``path``."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def read_csv_dicts(path):
    """The rows of the csv file ``path``, each a dict keyed by the header."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def read_skipped(save, split):
    """The lines of ``<save>/<split>.skipped.tsv``, each split into its tab-separated fields
    (``[id, reason, detail]``), in file order."""
    text = (pathlib.Path(save) / f"{split}.skipped.tsv").read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines()]


def assert_skip_reasons(save, split, expected):
    """Assert that ``<save>/<split>.skipped.tsv`` lists exactly the ids of ``expected`` (a dict
    id -> reason), each with its reason; returns the lines as a dict id -> fields (the last line
    of an id wins)."""
    listed = {fields[0]: fields for fields in read_skipped(save, split)}
    assert {k: v[1] for k, v in listed.items()} == expected
    return listed


def assert_summary_file(save, summary):
    """Assert that ``<save>/prepare_summary.json`` holds ``summary`` (what the call returned)."""
    assert json.loads((pathlib.Path(save) / "prepare_summary.json").read_text()) == summary


def inodes(save):
    """Inode of every file and folder under ``save``, keyed by its path relative to ``save``."""
    found = {}
    for folder, dirs, files in os.walk(save):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, save)] = os.stat(path).st_ino
    return found


def assert_second_call_is_a_no_op(monkeypatch, module, attr, call, save):
    """Run the preparation ``call()`` (which writes into ``save``) twice: the second call, with
    ``module.<attr>`` (the function that reads or prepares a split) made to raise, returns the
    same summary and rewrites nothing under ``save`` (same inodes). Returns the first summary
    and the inodes recorded after the first call (see :func:`inodes`)."""
    first = call()
    before = inodes(save)

    def fail(*args, **kwargs):
        raise AssertionError(f"{attr} called although the manifests are up to date")

    with monkeypatch.context() as m:
        m.setattr(module, attr, fail)
        assert call() == first
    assert inodes(save) == before
    return first, before


def assert_same_manifests(folder_a, folder_b, splits):
    """Assert that the ``<split>.csv`` manifests of ``folder_a`` and ``folder_b`` are identical
    for every split of ``splits``."""
    for split in splits:
        name = f"{split}.csv"
        a = (pathlib.Path(folder_a) / name).read_text()
        b = (pathlib.Path(folder_b) / name).read_text()
        assert a == b, f"{name} differs between {folder_a} and {folder_b}"


def empty_folder_error(tmp_path, prepare):
    """Call ``prepare(folder)`` on a new empty ``<tmp_path>/empty`` folder: it must raise
    FileNotFoundError saying that the folder holds nothing. Returns the message, for the checks
    of the dataset's expected layout that it describes."""
    empty = pathlib.Path(tmp_path) / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError) as err:
        prepare(empty)
    message = str(err.value)
    assert "it holds: nothing" in message
    return message
