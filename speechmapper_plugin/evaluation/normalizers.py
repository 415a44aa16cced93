"""Text normalizers of the WER metrics besides the MMS-style default
(``utils.text.normalize_text``): OpenAI Whisper's English and basic normalizers, with the
rules of OpenAI's code (``openai/whisper`` ``whisper/normalizers``), which the IWSLT 2025
organizers ran through ``whisper_normalizer==0.0.10`` and which the ASR leaderboards use.

``whisper_normalizer`` 0.0.10 downloads its spelling map from GitHub when it starts, so it
cannot run offline; later versions ship the map but added four colloquial rewrites to the
English normalizer (``kinda`` -> "kind of", ``sorta`` -> "sort of", ``dunno`` -> "do not
know", ``cause`` -> "because", also rewriting the noun "cause"; version 0.1.1). Here the
installed package is used with these four rules removed: the result is OpenAI's rule set with
its spelling map, checked at start-up (:func:`whisper_english_normalizer` refuses a package
whose rules or map differ from OpenAI's).

Authors
-------
speechmapper developers, 2026
"""

import functools
import hashlib
import json

#: The rewrites whisper_normalizer added after 0.0.10; OpenAI's normalizer has none of them.
POST_OPENAI_REPLACERS = (r"\bkinda\b", r"\bsorta\b", r"\bdunno\b", r"\bcause\b")


#: sha256 of OpenAI's English replacement rules (``json.dumps`` of the ``(pattern,
#: replacement)`` pairs, in order), openai/whisper release 20250625.
OPENAI_REPLACERS_SHA256 = "102ac92ef00fda0141de01309cff16b349977fa0f4c500ee155cdfd7e46ab097"


#: sha256 of OpenAI's British -> American spelling map ``english.json`` (unchanged since
#: 2023), parsed: ``json.dumps(mapping, sort_keys=True)``.
OPENAI_SPELLING_MAP_SHA256 = "a9514fed7a5a462d97b9a7a2f93d38e7ec098ad2dd4171096b9d9e7b2a8ccdec"


NORMALIZERS = ("mms", "whisper")


def _version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("whisper-normalizer")
    except PackageNotFoundError:
        return "unknown"


def _import_error(err):
    return ImportError(
        "The Whisper normalizer needs the whisper-normalizer package: pip install "
        f"whisper-normalizer==0.1.15 (it is in requirements.txt) ({err})."
    )


@functools.cache
def whisper_english_normalizer():
    """OpenAI Whisper's ``EnglishTextNormalizer`` (the rules of whisper_normalizer 0.0.10),
    offline.

    Returns
    -------
    callable
        ``str -> str``.

    Raises
    ------
    ImportError
        whisper-normalizer is not installed.
    RuntimeError
        The installed package's rules or spelling map are not OpenAI's once the four later
        rewrites are removed (another version: install the pinned one).

    Example
    -------
    >>> normalize = whisper_english_normalizer()
    >>> normalize("I kinda dunno, 'cause Mr. Smith paid ten dollars.")
    'i kinda dunno cause mister smith paid $10'
    """
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError as err:
        raise _import_error(err) from err
    normalizer = EnglishTextNormalizer()
    for pattern in POST_OPENAI_REPLACERS:
        normalizer.replacers.pop(pattern, None)
    rules = json.dumps(list(normalizer.replacers.items()))
    spelling = json.dumps(normalizer.standardize_spellings.mapping, sort_keys=True)
    if hashlib.sha256(rules.encode()).hexdigest() != OPENAI_REPLACERS_SHA256:
        raise RuntimeError(
            f"whisper-normalizer {_version()} has English rewrite rules that differ from "
            "OpenAI's (and from 0.0.10, the organizers' version) beyond the four known "
            "additions; install the tested version: pip install whisper-normalizer==0.1.15."
        )
    if hashlib.sha256(spelling.encode()).hexdigest() != OPENAI_SPELLING_MAP_SHA256:
        raise RuntimeError(
            f"whisper-normalizer {_version()} ships another English spelling map than "
            "OpenAI's; install the tested version: pip install whisper-normalizer==0.1.15."
        )
    return normalizer


@functools.cache
def whisper_basic_normalizer():
    """OpenAI Whisper's ``BasicTextNormalizer`` (languages other than English), defaults.

    Example
    -------
    >>> whisper_basic_normalizer()("Größe, Herr Müller!")
    'größe herr müller '
    """
    try:
        from whisper_normalizer.basic import BasicTextNormalizer
    except ImportError as err:
        raise _import_error(err) from err
    return BasicTextNormalizer()


def whisper_signature(kind="english"):
    """How the Whisper normalizer was run, for metric signatures.

    Example
    -------
    >>> whisper_signature().startswith("whisper-normalizer:")
    True
    """
    return f"whisper-normalizer:{_version()}(openai-rules=0.0.10)|{kind}"
