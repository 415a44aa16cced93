"""Minish, the invented target language of the synthetic translation task."""

import pytest

from speechmapper_plugin.data import prompts
from speechmapper_plugin.tiny.grammar import grammar_words
from speechmapper_plugin.tiny.minish import (
    MINISH_CODE,
    minish_instruction,
    minish_lexicon,
    minish_st_instructions,
    translate,
)


def test_lexicon_is_fixed_injective_covers_the_grammar_and_is_not_english():
    lexicon = minish_lexicon()
    assert lexicon == minish_lexicon()
    assert len(set(lexicon.values())) == len(lexicon)
    assert not set(lexicon.values()) & set(lexicon)
    assert set(grammar_words("full")) <= set(lexicon)
    assert translate("the dog", lexicon).split() == [lexicon["the"], lexicon["dog"]]


def test_a_word_outside_the_grammar_is_an_error_naming_it():
    with pytest.raises(ValueError, match="No Minish word for 'zyzzyva'"):
        translate("the zyzzyva")


def test_st_prompt_is_the_paper_template_in_minish():
    instruction = minish_instruction()
    assert instruction.endswith("?") and len(instruction.split()) == 9
    assert (
        instruction[0].isupper()
        and instruction.lower() == instruction[0].lower() + (instruction[1:])
    )
    prompt = prompts.task_prompt(
        "st", MINISH_CODE, zero_shot=False, st_instructions=minish_st_instructions()
    )
    assert prompt == prompts.build_prompt(instruction)
