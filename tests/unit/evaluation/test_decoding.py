"""Tests of stuck-decoding detection, the repetition guard and decoding statistics."""

import pytest
import torch

from speechmapper_plugin.evaluation.decoding import (
    RepetitionGuard,
    decoding_stats,
    is_stuck,
    tail_repetition,
)


@pytest.mark.parametrize(
    "ids, expected",
    [
        ([], (0, 0)),
        ([4], (0, 0)),
        ([4, 4], (1, 2)),
        ([1, 2, 3, 4], (0, 0)),
        ([9, 9, 9, 9], (1, 4)),  # ties between units of 1 and 2 tokens: the shortest
        ([5, 1, 2, 3, 1, 2, 3], (3, 2)),
        ([7, 1, 2, 1, 2, 1, 2, 8], (0, 0)),  # the repetition must end the sequence
    ],
)
def test_tail_repetition(ids, expected):
    assert tail_repetition(ids) == expected


def test_is_stuck_needs_the_limit_and_a_covering_repetition():
    her_sister = [11, 12] * 75  # "her sister" until the 150-token limit (Table 10)
    assert is_stuck([1, 2, 3] + her_sister[:-3], 150)
    assert not is_stuck(her_sister[:-2], 150)  # ended on eos before the limit
    assert not is_stuck(list(range(150)), 150)  # long but no repetition
    # A short repeated tail on a long genuine output is not "stuck".
    assert not is_stuck(list(range(140)) + [5, 6] * 5, 150)
    assert is_stuck(list(range(140)) + [5, 6] * 5, 150, min_coverage=0.05)


def test_guard_flags_rows_and_counts_trims():
    guard = RepetitionGuard(max_repeats=3, max_ngram=3, min_tokens=6)
    rows = torch.tensor([[1, 2, 3, 1, 2, 3, 1, 2, 3], [0, 0, 0, 5, 5, 5, 6, 6, 6], [7] * 9])
    assert guard(rows, None).tolist() == [True, False, True]
    assert guard.trim([1, 2, 3, 1, 2, 3, 1, 2, 3]) == [1, 2, 3]
    assert guard.trim([0, 1, 5, 5, 5]) == [0, 1, 5, 5, 5]  # covers 3 < 6 tokens: untouched
    assert guard.stopped == 1
    guard.reset()
    assert guard.stopped == 0
    with pytest.raises(ValueError, match="max_repeats"):
        RepetitionGuard(max_repeats=1)


def test_decoding_stats_rates_and_bad_input():
    stats = decoding_stats(
        ["a b c d e f g", "a b", "", "x y"],
        ["a b c", "a b", "c", "x y"],
        [True, False, False, False],
        guarded=2,
    )
    assert stats == {"stuck_pct": 25.0, "verbose_pct": 25.0, "guarded": 2, "empty_hypotheses": 1}
    # An empty reference counts as one word (a non-empty answer to it is not "verbose" below 3).
    assert decoding_stats(["a b"], [""], [False])["verbose_pct"] == 0.0
    assert decoding_stats(["a b c"], [""], [False])["verbose_pct"] == 100.0
    with pytest.raises(ValueError, match="2 hypotheses, 1 references"):
        decoding_stats(["a", "b"], ["a"], [False])
