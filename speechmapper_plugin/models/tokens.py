"""The LLM tokenizer and its special tokens: loading (``load_tokenizer``), the chat template's
end-of-turn token (``end_of_turn_token``) and the stage-1 pad token (``select_pad_token``:
Llama-3.1's reserved ``<|finetune_right_pad_id|>`` or another unused special token).

Authors
-------
speechmapper developers, 2026
"""

from speechmapper_plugin.models.hub import TOKENIZER_FILE_PATTERNS, resolve_source

LLAMA3_PAD_TOKEN = "<|finetune_right_pad_id|>"


_ANSWER_SENTINEL = "SpeechMapperAnswerSentinel"


def load_tokenizer(source, *, cache_dir=None, revision=None):
    """Loads the (fast) tokenizer of a local model folder or hub id (tokenizer files only).

    Arguments
    ---------
    source : str or Path
        A local model folder or a hub id.
    cache_dir : str or Path, optional
        The hub cache.
    revision : str, optional
        Hub revision.

    Returns
    -------
    transformers.PreTrainedTokenizerBase
        The tokenizer.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> load_tokenizer(folder).eos_token
    '<|eot_id|>'
    """
    from transformers import AutoTokenizer

    folder = resolve_source(
        source, cache_dir=cache_dir, revision=revision, allow_patterns=TOKENIZER_FILE_PATTERNS
    )
    return AutoTokenizer.from_pretrained(str(folder))


def _model_name(tokenizer):
    return getattr(tokenizer, "name_or_path", None) or "this model"


def _single_token_id(tokenizer, token):
    """The id of ``token`` if it is one vocabulary entry (not unk), else None."""
    token_id = tokenizer.convert_tokens_to_ids(token)
    if token_id is None or isinstance(token_id, list):
        return None
    if tokenizer.unk_token_id is not None and token_id == tokenizer.unk_token_id:
        return None if token != tokenizer.unk_token else token_id
    if tokenizer.convert_ids_to_tokens(token_id) != token:
        return None
    return int(token_id)


def end_of_turn_token(tokenizer):
    """The token closing an assistant turn in the chat template (else the eos token).

    It is found by rendering a one-turn conversation: for Llama-3.1 it is ``<|eot_id|>``,
    for ChatML models such as EuroLLM ``<|im_end|>``.

    Arguments
    ---------
    tokenizer : transformers.PreTrainedTokenizerBase
        The LLM tokenizer.

    Returns
    -------
    tuple
        (token, id).

    Example
    -------
    >>> from speechmapper_plugin.tiny.llm import train_tokenizer
    >>> end_of_turn_token(train_tokenizer(["the cat sat"]))[0]
    '<|eot_id|>'
    """
    if getattr(tokenizer, "chat_template", None):
        messages = [
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": _ANSWER_SENTINEL},
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False)
        if isinstance(text, str) and _ANSWER_SENTINEL in text:
            rest = text.split(_ANSWER_SENTINEL, 1)[1]
            ids = tokenizer(rest, add_special_tokens=False)["input_ids"] if rest else []
            special = _special_ids(tokenizer)
            if ids and ids[0] in special:
                return tokenizer.convert_ids_to_tokens(ids[0]), int(ids[0])
    if tokenizer.eos_token is None:
        raise ValueError(
            f"Cannot tell the end-of-turn token of {_model_name(tokenizer)}: its chat template "
            "does not close the assistant turn with a special token and it has no eos_token."
        )
    return tokenizer.eos_token, int(tokenizer.eos_token_id)


def _special_ids(tokenizer):
    ids = set(tokenizer.all_special_ids)
    for token_id, added in getattr(tokenizer, "added_tokens_decoder", {}).items():
        if getattr(added, "special", False):
            ids.add(int(token_id))
    return ids


def _pad_candidates(tokenizer, forbidden):
    candidates = [token for token in tokenizer.all_special_tokens if token not in forbidden]
    added = getattr(tokenizer, "added_tokens_decoder", {})
    for token_id in sorted(added):
        token = added[token_id].content
        if token not in forbidden and token not in candidates and "pad" in token.lower():
            candidates.append(token)
    return candidates[:12]


def select_pad_token(tokenizer, pad_token="auto"):
    """Chooses the reserved token whose embedding pads the stage-1 targets.

    ``"auto"`` picks ``<|finetune_right_pad_id|>`` when the vocabulary has it (Llama-3.x),
    otherwise the tokenizer's own ``pad_token`` (EuroLLM sets one). An explicit token must be
    one vocabulary entry (not unk). In all cases it must differ from the eos and end-of-turn
    tokens (the LLM would stop on it).

    Arguments
    ---------
    tokenizer : transformers.PreTrainedTokenizerBase
        The LLM tokenizer.
    pad_token : str
        ``"auto"`` or a token string.

    Returns
    -------
    tuple
        (token, id).

    Example
    -------
    >>> from speechmapper_plugin.tiny.llm import train_tokenizer
    >>> tok = train_tokenizer(["the cat sat"])
    >>> select_pad_token(tok)[0]
    '<|finetune_right_pad_id|>'
    >>> select_pad_token(tok, "<|reserved_special_token_0|>")[0]
    '<|reserved_special_token_0|>'
    """
    name = _model_name(tokenizer)
    eot_token, _ = end_of_turn_token(tokenizer)
    forbidden = {token for token in (tokenizer.eos_token, eot_token) if token is not None}
    hint = (
        f"Choose one with --pad_token=<token>; candidates: {_pad_candidates(tokenizer, forbidden)}"
    )
    if pad_token is None or pad_token == "auto":
        if _single_token_id(tokenizer, LLAMA3_PAD_TOKEN) is not None:
            token = LLAMA3_PAD_TOKEN
        elif tokenizer.pad_token is not None:
            token = tokenizer.pad_token
        else:
            raise ValueError(
                f"{name} has no reserved pad token ({LLAMA3_PAD_TOKEN!r} is not in its "
                f"vocabulary and its tokenizer sets no pad_token). {hint}"
            )
        if token in forbidden:
            raise ValueError(
                f"The pad token of {name} is {token!r}, which is also its eos / end-of-turn "
                f"token and cannot pad the targets. {hint}"
            )
    else:
        token = str(pad_token)
        if token in forbidden:
            raise ValueError(
                f"Pad token {token!r} is the eos / end-of-turn token of {name}: the LLM would "
                f"stop on it. {hint}"
            )
    token_id = _single_token_id(tokenizer, token)
    if token_id is None:
        raise ValueError(
            f"Pad token {token!r} is not a single token of the {name} vocabulary. {hint}"
        )
    return token, token_id
