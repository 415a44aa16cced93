"""Tests for speechmapper_plugin.utils.textfiles: text read line by line, a byte that is not
UTF-8 named with its file, line and column (or handed to the caller to skip the line)."""

import csv

import pytest

from speechmapper_plugin.utils.textfiles import (
    TextEncodingError,
    decoded_lines,
    delimited_rows,
    read_text,
    text_lines,
)


def test_lines_split_on_newline_only_bom_and_cr_dropped(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffa\r\nb\u2028c\n\nd".encode())
    assert list(decoded_lines(path)) == [
        (1, "a", None),
        (2, "b\u2028c", None),  # a Unicode line separator inside a line is text
        (3, "", None),
        (4, "d", None),
    ]
    assert [t for _, t in text_lines(path, keepends=True)] == ["a\r\n", "b\u2028c\n", "\n", "d"]


def test_a_bad_line_is_an_error_naming_file_line_and_byte(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"ok\ncaf\xe9 au lait\nfine\n")
    with pytest.raises(TextEncodingError) as err:
        list(text_lines(path))
    assert (err.value.path, err.value.line) == (str(path), 2)
    assert str(err.value).startswith(f"{path} line 2: not valid UTF-8 (byte 0xe9 at column 4)")
    assert isinstance(err.value, ValueError)


def test_a_bad_line_can_be_skipped_and_the_rest_is_read(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"ok\ncaf\xe9 au lait\nfine\n")
    bad = []
    lines = list(text_lines(path, lambda no, text, problem: bad.append((no, text, problem))))
    assert lines == [(1, "ok"), (3, "fine")]
    assert bad == [(2, "caf\ufffd au lait", "byte 0xe9 at column 4")]


def test_delimited_rows_keep_physical_line_numbers(tmp_path):
    path = tmp_path / "m.csv"
    path.write_bytes(b'ID,text\na,"two\nlines"\nb,\xff\nc,ok\n')
    skipped = []
    rows = list(delimited_rows(path, lambda no, *_: skipped.append(no)))
    assert rows == [(1, ["ID", "text"]), (3, ["a", "two\nlines"]), (5, ["c", "ok"])]
    assert skipped == [4]
    tsv = tmp_path / "t.tsv"
    tsv.write_text('id\ttext\n1\the said "hi\n', encoding="utf-8")
    assert list(delimited_rows(tsv, delimiter="\t", quoting=csv.QUOTE_NONE))[1] == (
        2,
        ["1", 'he said "hi'],
    )


def test_read_text_names_line_and_column(tmp_path):
    path = tmp_path / "d.json"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1,\n "b": "x\xc3"}\n')
    with pytest.raises(TextEncodingError, match=r"d\.json line 2: .*byte 0xc3 at column 9"):
        read_text(path)
    path.write_bytes(b'\xef\xbb\xbf{"a": "\xc3\xa9"}')
    assert read_text(path) == '{"a": "\u00e9"}'
