"""Tests of ``speechmapper_plugin.data.manifests`` (manifests)."""

import os

import pytest
from speechbrain.dataio.dataio import load_data_csv

from speechmapper_plugin.data.manifests import manifest_path, write_csv


def test_write_csv_content_and_read_back(tmp_path):
    path = tmp_path / "deep" / "x.csv"
    rows = [
        {"ID": "a", "duration": 1.5, "wrd": "hello, world", "extra": "ignored"},
        {"ID": "b", "duration": 2, "wrd": 'say "hi"'},
    ]
    write_csv(str(path), rows, ["ID", "duration", "wrd"])
    assert path.read_text(encoding="utf-8").splitlines() == [
        "ID,duration,wrd",
        'a,1.5,"hello, world"',
        'b,2,"say ""hi"""',
    ]
    loaded = load_data_csv(str(path))
    assert loaded["a"]["wrd"] == "hello, world" and loaded["b"]["wrd"] == 'say "hi"'
    assert loaded["a"]["duration"] == 1.5
    assert os.listdir(path.parent) == ["x.csv"]  # no temporary file left behind


def test_write_csv_replaces_atomically_and_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "x.csv"
    write_csv(str(path), [{"ID": "a", "n": 1}], ["ID", "n"])
    inode = path.stat().st_ino
    write_csv(str(path), [{"ID": "b", "n": 2}], ["ID", "n"])
    assert path.read_text() == "ID,n\nb,2\n"
    assert path.stat().st_ino != inode  # a new file renamed over the old one
    with pytest.raises(KeyError):
        write_csv(str(path), [{"ID": "c", "n": 3}, {"ID": "d"}], ["ID", "n"])
    assert path.read_text() == "ID,n\nb,2\n"
    assert os.listdir(tmp_path) == ["x.csv"]


def test_write_csv_requires_id_first(tmp_path):
    with pytest.raises(ValueError, match="first column must be 'ID'"):
        write_csv(str(tmp_path / "x.csv"), [], ["duration", "ID"])


def test_manifest_path():
    assert manifest_path("/m", "dev-clean") == os.path.join("/m", "dev-clean.csv")


def test_read_manifest_names_file_line_and_column(tmp_path):
    from speechmapper_plugin.data.manifests import extraction_items, read_manifest
    from speechmapper_plugin.utils.textfiles import TextEncodingError

    path = tmp_path / "hand.csv"
    path.write_text("ID,duration,wrd\na,1.0,hello\nb,2.0,\n", encoding="utf-8")
    assert read_manifest(str(path))["b"] == {"duration": 2.0, "wrd": ""}
    with pytest.raises(ValueError) as err:
        read_manifest(str(path), nonempty=["wrd"])
    assert str(err.value) == (
        f"Manifest {path} line 3 (b): empty 'wrd'; every row needs one (fill it in or remove "
        "the row)."
    )
    # a manifest without a wav column: extraction says which file and column (not KeyError 'wav')
    with pytest.raises(KeyError) as err:
        extraction_items(str(path))
    assert err.value.args[0] == (
        f"Manifest {path} has no column 'wav' (it has ['ID', 'duration', 'wrd']): re-run the "
        "dataset's prepare script, or add the column."
    )
    path.write_text("ID,duration,wrd\na,1.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"hand\.csv line 2: 2 fields, the header has 3"):
        read_manifest(str(path))
    path.write_bytes(b"ID,duration,wrd\na,1.0,ok\nb,1.0,caf\xe9\n")
    with pytest.raises(TextEncodingError, match=r"hand\.csv line 3: not valid UTF-8 \(byte 0xe9"):
        read_manifest(str(path))
