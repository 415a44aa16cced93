"""Tests of ``speechmapper_plugin.models.tokens`` (the LLM tokenizer and its special tokens)."""

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from speechmapper_plugin.models.tokens import end_of_turn_token, select_pad_token


def chatml_tokenizer(pad_token="<pad>"):
    """A EuroLLM-like (ChatML, own pad token, no Llama-3 pad) word-level tokenizer."""
    vocab = ["<unk>", "<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>", "hello", "world"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="<|im_end|>",
        unk_token="<unk>",
        pad_token=pad_token,
        additional_special_tokens=["<|im_start|>", "</s>"],
        name_or_path="acme/eurollm-like",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content']"
        " + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    return tokenizer


def test_select_pad_token_llama_style(llm):
    tokenizer = llm.tokenizer
    token, token_id = select_pad_token(tokenizer)
    assert token == "<|finetune_right_pad_id|>"
    assert token_id == tokenizer.convert_tokens_to_ids(token)
    assert end_of_turn_token(tokenizer) == ("<|eot_id|>", tokenizer.eos_token_id)
    token, _ = select_pad_token(tokenizer, "<|reserved_special_token_1|>")
    assert token == "<|reserved_special_token_1|>"
    for bad in ("<|eot_id|>", "<pad>", "not a token"):
        with pytest.raises(ValueError) as error:
            select_pad_token(tokenizer, bad)
        message = str(error.value)
        assert repr(bad) in message
        assert "--pad_token=<token>" in message
        assert "<|finetune_right_pad_id|>" in message  # a candidate
        assert llm.tokenizer.name_or_path in message  # names the model


def test_select_pad_token_chatml_style():
    tokenizer = chatml_tokenizer()
    assert end_of_turn_token(tokenizer) == ("<|im_end|>", 5)
    assert select_pad_token(tokenizer) == ("<pad>", 3)
    with pytest.raises(ValueError, match="acme/eurollm-like.*--pad_token"):
        select_pad_token(chatml_tokenizer(pad_token=None))
    with pytest.raises(ValueError, match="eos / end-of-turn"):
        select_pad_token(chatml_tokenizer(pad_token="<|im_end|>"))
    with pytest.raises(ValueError, match="not a single token"):
        select_pad_token(tokenizer, "<|finetune_right_pad_id|>")
