"""Minish: an invented target language for a synthetic speech-translation task on the
mini-corpus, with a fixed word-for-word lexicon from English.

The trained tiny chat LM (``tiny.chat_lm``) learns to translate into Minish, so that the
demo's miniature of the paper has a task besides ASR: a task a stage-2 projector can be
zero-shot evaluated on (paper Table 7 / Fig. 2) or trained on (setting iii). Its ST
instruction is the paper's ("Can you translate the Speech content into <language> text?"),
written in the target language as the paper's ST instructions are.

Minish has the ISO 639-2 code ``qaa`` (the range ``qaa``-``qtz`` is reserved for local use):
BLEU scores it with sacrebleu's default ``13a`` tokenizer, and output-language
identification, which has no model for it, is left out of its results
(``evaluation.metrics.is_private_use_language``).

Example
-------
>>> translate("the dog ran", minish_lexicon()) != "the dog ran"
True

Authors
-------
speechmapper developers, 2026
"""

import functools
import random

from speechmapper_plugin.tiny.grammar import grammar_words

#: ISO 639-2 reserves ``qaa``-``qtz`` for local use: the code of the invented target language.
MINISH_CODE = "qaa"


MINISH_NAME = "Minish"


#: The paper's ST instruction (Table 12 caption), before translation into the target language.
ST_INSTRUCTION_EN = "Can you translate the Speech content into {language} text?"


_CONSONANTS = "bdfgklmnprstvz"


_VOWELS = "aeiou"


_CODAS = "lnrs"


#: The seed of the shipped lexicon.
LEXICON_SEED = 13


def _instruction_words(language=MINISH_NAME):
    return ST_INSTRUCTION_EN.format(language=language).lower().rstrip("?").split()


@functools.lru_cache(maxsize=4)
def _lexicon(seed):
    english = sorted(set(grammar_words("full")) | set(_instruction_words()))
    rng = random.Random(seed)
    taken, lexicon = set(english), {}
    for word in english:
        while True:
            syllables = rng.choice((2, 2, 3))
            candidate = "".join(
                rng.choice(_CONSONANTS) + rng.choice(_VOWELS) for _ in range(syllables)
            )
            if rng.random() < 0.3:
                candidate += rng.choice(_CODAS)
            if candidate not in taken:
                break
        taken.add(candidate)
        lexicon[word] = candidate
    return lexicon


def minish_lexicon(seed=LEXICON_SEED):
    """The fixed English -> Minish word-for-word lexicon.

    Every word of the mini-corpus grammar (full vocabulary) and of the ST instruction gets a
    distinct invented word of 2-3 consonant-vowel syllables (sometimes with a final
    consonant), never an English word of the grammar. Depends only on ``seed``.

    Arguments
    ---------
    seed : int
        Seed of the invented words.

    Returns
    -------
    dict
        English word -> Minish word (a copy).

    Example
    -------
    >>> lexicon = minish_lexicon()
    >>> len(set(lexicon.values())) == len(lexicon), lexicon == minish_lexicon()
    (True, True)
    """
    return dict(_lexicon(int(seed)))


def translate(text, lexicon=None):
    """Word-for-word translation of a lowercase English sentence into Minish.

    Arguments
    ---------
    text : str
        Words separated by spaces, all in the lexicon.
    lexicon : dict, optional
        Default: :func:`minish_lexicon`.

    Returns
    -------
    str
        The translation (same number of words, same order).

    Raises
    ------
    ValueError
        A word without a Minish translation (Minish only covers the mini-corpus grammar).

    Example
    -------
    >>> translate("the dog", {"the": "ko", "dog": "bami"})
    'ko bami'
    """
    lexicon = _lexicon(LEXICON_SEED) if lexicon is None else lexicon
    try:
        return " ".join(lexicon[word] for word in text.split())
    except KeyError as err:
        raise ValueError(
            f"No Minish word for {err.args[0]!r} (in {text!r}): Minish only covers the "
            "words of the mini-corpus grammar (speechmapper_plugin.tiny.grammar)."
        ) from None


def minish_instruction(lexicon=None):
    """The paper's ST instruction written in Minish (as its ST instructions are written in the
    target language), capitalized and ending with a question mark.

    Example
    -------
    >>> minish_instruction({w: w.upper() for w in _instruction_words()})
    'CAN YOU TRANSLATE THE SPEECH CONTENT INTO MINISH TEXT?'
    """
    words = translate(" ".join(_instruction_words()), lexicon)
    return words[:1].upper() + words[1:] + "?"


def minish_st_instructions(lexicon=None):
    """``{MINISH_CODE: instruction}``: the ``st_instructions`` of ``prompts.task_prompt`` and
    of the YAML files (``--st_instructions``) for Minish ST.

    Example
    -------
    >>> list(minish_st_instructions())
    ['qaa']
    """
    return {MINISH_CODE: minish_instruction(lexicon)}
