"""Reading UTF-8 text files line by line, so that a byte that is not UTF-8 is reported with its
file and line (and the other lines are still read), instead of a bare ``UnicodeDecodeError``
that stops the whole file.

Every reader of transcripts, corpus tables and manifests goes through ``text_lines`` (line
based: a bad line is an error, or a callback the caller turns into a counted skip),
``delimited_rows`` (csv / tsv rows over the same lines) or ``read_text`` (a whole file, for
JSON; an error naming the line and column).

Authors
-------
speechmapper developers, 2026
"""

import codecs
import csv


class TextEncodingError(ValueError):
    """A text file holds bytes that are not UTF-8; ``path`` and ``line`` say where.

    Example
    -------
    >>> str(TextEncodingError("a.txt", 3, "byte 0xff at column 5"))
    'a.txt line 3: not valid UTF-8 (byte 0xff at column 5): re-encode the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or fix the line.'
    """

    def __init__(self, path, line, detail):
        self.path, self.line, self.detail = str(path), int(line), detail
        super().__init__(
            f"{self.path} line {self.line}: not valid UTF-8 ({detail}): re-encode the file as "
            "UTF-8 (e.g. `iconv -f latin1 -t utf-8`) or fix the line."
        )


def _describe(err):
    bad = err.object[err.start : err.end]
    return f"byte {' '.join(f'0x{b:02x}' for b in bad)} at column {err.start + 1}"


def decoded_lines(path, keepends=False):
    """Every line of a text file decoded on its own: ``(line_no, text, problem)``.

    Lines are split on ``\\n`` only (a translation may hold other Unicode line separators);
    a UTF-8 byte-order mark at the start is dropped; without ``keepends`` the ``\\n`` and a
    trailing ``\\r`` are removed. ``problem`` is None for a valid line, else says which byte
    is not UTF-8 (``text`` then holds U+FFFD in its place, so the caller can still name the
    row).

    Arguments
    ---------
    path : str
        The file.
    keepends : bool
        Keep the line endings (what ``csv.reader`` needs).

    Example
    -------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "wb").write(b"a ok\\nb caf\\xe9\\n")
    >>> list(decoded_lines(p))
    [(1, 'a ok', None), (2, 'b caf\\ufffd', 'byte 0xe9 at column 6')]
    """
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8) :]
            if not keepends:
                raw = raw.rstrip(b"\n").rstrip(b"\r")
            try:
                yield line_no, raw.decode("utf-8"), None
            except UnicodeDecodeError as err:
                yield line_no, raw.decode("utf-8", errors="replace"), _describe(err)


def text_lines(path, on_bad_line=None, keepends=False):
    """The valid lines of a UTF-8 text file: ``(line_no, text)``.

    A line that is not UTF-8 raises ``TextEncodingError`` (file and line named), or, with
    ``on_bad_line``, is reported as ``on_bad_line(line_no, text, problem)`` and left out (a
    corpus preparation counts it as a skipped row; ``text`` holds U+FFFD for the bad bytes).

    Example
    -------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> _ = open(p, "wb").write(b"a ok\\nb caf\\xe9\\nc fine\\n")
    >>> bad = []
    >>> list(text_lines(p, lambda no, text, problem: bad.append(no)))
    [(1, 'a ok'), (3, 'c fine')]
    >>> bad
    [2]
    >>> list(text_lines(p))
    Traceback (most recent call last):
    ...
    speechmapper_plugin.utils.textfiles.TextEncodingError: ... line 2: not valid UTF-8 (byte 0xe9 at column 6): ...
    """
    for line_no, text, problem in decoded_lines(path, keepends=keepends):
        if problem is None:
            yield line_no, text
        elif on_bad_line is None:
            raise TextEncodingError(path, line_no, problem)
        else:
            on_bad_line(line_no, text, problem)


def delimited_rows(path, on_bad_line=None, **csv_format):
    """The rows of a csv / tsv file read through ``text_lines``: ``(line_no, fields)``, the
    header first. ``line_no`` is the (last) line of the row; ``csv_format`` goes to
    ``csv.reader`` (e.g. ``delimiter="\\t", quoting=csv.QUOTE_NONE``).

    Example
    -------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.tsv")
    >>> _ = open(p, "wb").write(b"id\\ttext\\n1\\tok\\n2\\t\\xff\\n3\\tfine\\n")
    >>> list(delimited_rows(p, lambda *bad: None, delimiter="\\t"))
    [(1, ['id', 'text']), (2, ['1', 'ok']), (4, ['3', 'fine'])]
    """
    where = [0]

    def lines():
        for line_no, text in text_lines(path, on_bad_line, keepends=True):
            where[0] = line_no
            yield text

    for fields in csv.reader(lines(), **csv_format):
        yield where[0], fields


def read_text(path):
    """The whole content of a UTF-8 text file (a leading byte-order mark dropped); a
    ``TextEncodingError`` naming the line and column of the first byte that is not UTF-8.

    Example
    -------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.json")
    >>> _ = open(p, "wb").write(b'{"a":\\n "\\xc3("}')
    >>> read_text(p)
    Traceback (most recent call last):
    ...
    speechmapper_plugin.utils.textfiles.TextEncodingError: ... line 2: not valid UTF-8 (byte 0xc3 at column 3): ...
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1)
        bad = data[err.start : err.end]
        raise TextEncodingError(
            path, line, f"byte {' '.join(f'0x{b:02x}' for b in bad)} at column {column + 1}"
        ) from None
