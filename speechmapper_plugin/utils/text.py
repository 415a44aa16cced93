"""Target-text normalization, MMS style (paper Sec. 3: "MMS normalization is applied to the
target text before generating the text embeddings").

The steps follow the MMS data-preparation normalizer (Pratap et al., 2024): Unicode NFKC,
lower-casing, removal of bracketed spans that contain digits, mapping of typographic
apostrophes/quotes/dashes, punctuation replaced by spaces (apostrophes *inside* words are kept,
as in LibriSpeech: "don't"), removal of words made only of digits, and whitespace collapsing.
The same function normalizes LLM outputs before WER/CER, so that hypotheses and references
are compared in the same space.

Authors
-------
speechmapper developers, 2026
"""

import re
import unicodedata

_MAPPING = {
    "\u2019": "'",  # right single quotation mark
    "\u2018": "'",
    "\u02bc": "'",
    "`": "'",
    "\u00b4": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
}


_BRACKET_WITH_DIGIT = re.compile(r"[\(\[\{][^\)\]\}]*\d[^\)\]\}]*[\)\]\}]")


_BRACKET_ANY = re.compile(r"[\(\[\{][^\)\]\}]*[\)\]\}]")


# Everything that is not a letter, a mark, a digit, an apostrophe or whitespace is punctuation.
_PUNCT = re.compile(r"[^\w\s']|_", flags=re.UNICODE)


_STRAY_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


_DIGIT_WORD = re.compile(r"(?<!\S)\d+(?!\S)")


_SPACES = re.compile(r"\s+")


def normalize_text(text, lower_case=True, remove_numbers=True, remove_brackets=False):
    """Normalize a transcript (or an LLM output) MMS-style.

    Arguments
    ---------
    text : str
        Raw text.
    lower_case : bool
        Lower-case the text (LibriSpeech transcripts are upper-case).
    remove_numbers : bool
        Drop words made only of digits.
    remove_brackets : bool
        Drop every bracketed span (spans containing digits are always dropped).

    Returns
    -------
    str
        The normalized text (single spaces, no leading/trailing space).

    Example
    -------
    >>> normalize_text("HELLO, World!  It\u2019s 42 (see [3]) -- fine.")
    "hello world it's fine"
    >>> normalize_text("'quoted' words")
    'quoted words'
    """
    if text is None:
        return ""
    text = str(text)
    for old, new in _MAPPING.items():  # before NFKC, which decomposes e.g. the acute accent
        text = text.replace(old, new)
    text = unicodedata.normalize("NFKC", text)
    if lower_case:
        text = text.lower()
    text = _BRACKET_WITH_DIGIT.sub(" ", text)
    if remove_brackets:
        text = _BRACKET_ANY.sub(" ", text)
    text = _PUNCT.sub(" ", text)
    text = _STRAY_APOSTROPHE.sub(" ", text)
    if remove_numbers:
        text = _DIGIT_WORD.sub(" ", text)
    return _SPACES.sub(" ", text).strip()
