"""Prompt templates (paper App. B.3). Every template is a user-turn string holding the
speech placeholder exactly once; the frozen LLM's chat template wraps it (``llm.FrozenLLM``).
All of them can be replaced from the YAML files.

Authors
-------
speechmapper developers, 2026
"""

__all__ = [
    "PLACEHOLDER",
    "ZERO_SHOT_ASR",
    "ASR_INSTRUCTION",
    "SPEECH_PREFIX",
    "IT_SUFFIX",
    "ZERO_SHOT_SUFFIX",
    "build_prompt",
    "check_prompt",
]

#: Marks where the projector's output vectors are spliced into the prompt.
PLACEHOLDER = "<speech>"

#: The zero-shot ASR prompt of Table 11 (the speech vectors sit between the quotes).
ZERO_SHOT_ASR = (
    f'"{PLACEHOLDER}"\n'
    "Repeat the previous text between the quotes in its entirety just once and nothing else. "
    "Do not repeat the text multiple times or correct the text or add punctuation. "
    "End the text if you notice a phrase or a text is getting repeated. "
    "Ignore the words that do not make any sense."
)

#: The ASR task instruction of the IWSLT25 instruction-following prompts (talk slides).
ASR_INSTRUCTION = "Can you transcribe the content in English text?"

#: Speech prefix of the instruction-tuning template (Table 12 is an image in our copy of the
#: paper; this wording is ours and can be replaced in the YAML).
SPEECH_PREFIX = f"Speech segment: {PLACEHOLDER}\n"

#: Suffix used for instruction tuning (none) and for zero-shot evaluation (constraining).
IT_SUFFIX = ""
ZERO_SHOT_SUFFIX = " Answer with the requested text only, without any explanation."


def check_prompt(prompt, placeholder=PLACEHOLDER, name="prompt"):
    """Check that ``prompt`` holds ``placeholder`` exactly once.

    Arguments
    ---------
    prompt : str
        The user-turn template.
    placeholder : str
        The speech placeholder.
    name : str
        Name of the YAML key, for the error message.

    Returns
    -------
    str
        The prompt, unchanged.

    Example
    -------
    >>> check_prompt(ZERO_SHOT_ASR) == ZERO_SHOT_ASR
    True
    """
    count = prompt.count(placeholder)
    if count != 1:
        raise ValueError(
            f"The {name} must contain the speech placeholder {placeholder!r} exactly once "
            f"(found {count} times) in: {prompt!r}"
        )
    return prompt


def build_prompt(instruction, prefix=SPEECH_PREFIX, suffix=IT_SUFFIX):
    """User prompt of the instruction-tuning template: speech prefix + task + suffix.

    Arguments
    ---------
    instruction : str
        The task instruction (e.g. ``ASR_INSTRUCTION``).
    prefix : str
        The speech prefix, holding the placeholder.
    suffix : str
        ``IT_SUFFIX`` for training, ``ZERO_SHOT_SUFFIX`` for zero-shot evaluation.

    Returns
    -------
    str
        The full user-turn template.

    Example
    -------
    >>> build_prompt(ASR_INSTRUCTION)
    'Speech segment: <speech>\\nCan you transcribe the content in English text?'
    """
    return check_prompt(prefix + instruction + suffix)
