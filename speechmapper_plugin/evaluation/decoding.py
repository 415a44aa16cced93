"""Decoding failure modes of speech LLMs (paper App. B.2, C.1): stuck decoding and verbosity.

*Stuck decoding*: on a prompt mixing text tokens and projected speech vectors, greedy search
sometimes locks onto a token or an n-gram and repeats it until the token limit ("her sister
her sister ..."), which alone can push a test set's WER into the hundreds. A generation is
counted as stuck when it reached ``max_new_tokens`` without an end-of-sequence token and its
tail is one unit of at most ``max_ngram`` tokens repeated at least ``min_repeats`` times,
covering at least ``min_coverage`` of the output.

:class:`RepetitionGuard` optionally stops such a generation early (a ``transformers``
stopping criterion, per sequence) and keeps one copy of the repeated unit; the number of
guarded generations is reported next to the metrics, so the guard never hides the failure.

*Verbosity*: outputs much longer than the reference (explanations, refusals, repeated
prompts — Table 13) are counted with a word-length ratio.

Authors
-------
speechmapper developers, 2026
"""

import torch
from transformers import StoppingCriteria


def tail_repetition(ids, max_ngram=8):
    """The n-gram repeated most at the end of a sequence.

    Arguments
    ---------
    ids : list of int
        A token sequence.
    max_ngram : int
        Longest repeating unit considered.

    Returns
    -------
    tuple
        ``(n, repeats)``: the unit length and how many consecutive copies (at least 2) end
        the sequence; the unit covering the most tokens wins, the shortest on ties;
        ``(0, 0)`` when the sequence does not end with a repetition.

    Example
    -------
    >>> tail_repetition([5, 1, 2, 1, 2, 1, 2])
    (2, 3)
    >>> tail_repetition([1, 2, 3])
    (0, 0)
    """
    ids = list(ids)
    best = (0, 0)
    for n in range(1, min(max_ngram, len(ids)) + 1):
        unit = ids[len(ids) - n :]
        repeats = 1
        while (repeats + 1) * n <= len(ids):
            start = len(ids) - (repeats + 1) * n
            if ids[start : start + n] != unit:
                break
            repeats += 1
        if repeats >= 2 and repeats * n > best[0] * best[1]:
            best = (n, repeats)
    return best


def is_stuck(ids, max_new_tokens, max_ngram=8, min_repeats=3, min_coverage=0.5):
    """Whether a generation got stuck (App. B.2): token limit reached on a repeated unit.

    Arguments
    ---------
    ids : list of int
        The generated ids, end-of-sequence excluded.
    max_new_tokens : int
        The generation limit.
    max_ngram : int
        Longest repeating unit.
    min_repeats : int
        Minimum consecutive copies of the unit at the end.
    min_coverage : float
        Minimum fraction of the output covered by the copies.

    Returns
    -------
    bool

    Example
    -------
    >>> is_stuck([7, 3, 4] * 5, max_new_tokens=15)
    True
    >>> is_stuck([7, 3, 4] * 5, max_new_tokens=150)
    False
    """
    if len(ids) < max_new_tokens:
        return False
    n, repeats = tail_repetition(ids, max_ngram)
    return repeats >= min_repeats and n * repeats >= min_coverage * len(ids)


class RepetitionGuard(StoppingCriteria):
    """Stops a generation once it ends with ``max_repeats`` copies of a short unit.

    Used as a ``transformers`` stopping criterion (one flag per sequence); ``trim`` then cuts
    the output after the first copy of the repeated unit. ``stopped`` counts the sequences it
    stopped since the last :meth:`reset`.

    Arguments
    ---------
    max_repeats : int
        Consecutive copies that trigger the stop.
    max_ngram : int
        Longest repeating unit.
    min_tokens : int
        Minimum number of tokens the copies must cover (a word said twice is not stuck).

    Example
    -------
    >>> guard = RepetitionGuard(max_repeats=4, max_ngram=2)
    >>> ids = torch.tensor([[9, 1, 2, 1, 2, 1, 2, 1, 2], [9, 8, 7, 6, 5, 4, 3, 2, 1]])
    >>> guard(ids, None).tolist()
    [True, False]
    >>> guard.trim([9, 1, 2, 1, 2, 1, 2, 1, 2])
    [9, 1, 2]
    """

    def __init__(self, max_repeats=6, max_ngram=8, min_tokens=8):
        if max_repeats < 2:
            raise ValueError(f"RepetitionGuard: max_repeats must be >= 2, got {max_repeats}.")
        self.max_repeats = int(max_repeats)
        self.max_ngram = int(max_ngram)
        self.min_tokens = int(min_tokens)
        self.stopped = 0

    def reset(self):
        """Reset the count of stopped sequences."""
        self.stopped = 0

    def _triggers(self, ids):
        n, repeats = tail_repetition(ids, self.max_ngram)
        return repeats >= self.max_repeats and n * repeats >= self.min_tokens

    def __call__(self, input_ids, scores, **kwargs):
        """One stop flag per sequence (``transformers.StoppingCriteria`` protocol)."""
        flags = [self._triggers(row) for row in input_ids.tolist()]
        return torch.tensor(flags, dtype=torch.bool, device=input_ids.device)

    def trim(self, ids):
        """Cut a guarded sequence after the first copy of its repeated tail.

        Arguments
        ---------
        ids : list of int
            Generated ids.

        Returns
        -------
        list of int
            The ids, trimmed if the guard triggers on them (and counted), else unchanged.
        """
        ids = list(ids)
        if not self._triggers(ids):
            return ids
        n, repeats = tail_repetition(ids, self.max_ngram)
        self.stopped += 1
        return ids[: len(ids) - (repeats - 1) * n]


def decoding_stats(hypotheses, references, stuck, verbose_ratio=2.0, guarded=0):
    """Rates of stuck and verbose generations over a test set, in percent.

    Arguments
    ---------
    hypotheses : list of str
        Generated texts.
    references : list of str
        References (same order).
    stuck : list of bool
        Per-utterance stuck flags (:func:`is_stuck`).
    verbose_ratio : float
        An output with more than ``verbose_ratio`` times the reference's words is verbose.
    guarded : int
        Generations stopped by a :class:`RepetitionGuard`.

    Returns
    -------
    dict
        ``stuck_pct``, ``verbose_pct``, ``guarded``, ``empty_hypotheses``.

    Example
    -------
    >>> stats = decoding_stats(["a b c d e", "a b", ""], ["a b", "a b", "c"], [True, False, False])
    >>> round(stats["stuck_pct"], 1), round(stats["verbose_pct"], 1), stats["empty_hypotheses"]
    (33.3, 33.3, 1)
    """
    if not len(hypotheses) == len(references) == len(stuck):
        raise ValueError(
            f"decoding_stats: {len(hypotheses)} hypotheses, {len(references)} references and "
            f"{len(stuck)} stuck flags."
        )
    total = max(len(hypotheses), 1)
    verbose = sum(
        len(h.split()) > verbose_ratio * max(len(r.split()), 1)
        for h, r in zip(hypotheses, references)
    )
    return {
        "stuck_pct": 100.0 * sum(bool(s) for s in stuck) / total,
        "verbose_pct": 100.0 * verbose / total,
        "guarded": int(guarded),
        "empty_hypotheses": sum(not h.strip() for h in hypotheses),
    }
