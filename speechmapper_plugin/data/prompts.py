"""Prompt templates (paper App. B.3, IWSLT25 instruction-following prompts). Every template is
a user-turn string holding the speech placeholder exactly once; the frozen LLM's chat template
(read from its tokenizer, so Llama-3.1 and EuroLLM each get their own) wraps it
(``frozen_llm.FrozenLLM``). All of them can be replaced from the YAML files.

User prompt = prefix + task instruction + suffix (Table 12): the speech prefix for speech
input, the text prefix for cascades (the placeholder then receives the transcript), the
zero-shot suffix for zero-shot evaluation. ST instructions are written in the target
language (the talk shows the German and Chinese ones; the es/fr/it wordings are ours, since
the paper's were machine-translated with SeamlessM4T-v2 and are not printed).

Authors
-------
speechmapper developers, 2026
"""

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


#: Text prefix of cascaded evaluation (transcript + LLM): the placeholder gets the text.
TEXT_PREFIX = f"Text segment: {PLACEHOLDER}\n"


#: "Can you translate the Speech content into <language> text?", in the target language.
ST_INSTRUCTIONS = {
    "de": "Können Sie den Inhalt der Rede in den deutschen Text übersetzen?",
    "zh": "你能把演讲内容翻译成中文吗?",
    "es": "¿Puede traducir el contenido del discurso a un texto en español?",
    "fr": "Pouvez-vous traduire le contenu du discours en texte français ?",
    "it": "Può tradurre il contenuto del discorso in un testo italiano?",
}


#: English names of the supported target languages (messages and tables).
LANGUAGE_NAMES = {
    "en": "English",
    "de": "German",
    "zh": "Chinese",
    "es": "Spanish",
    "fr": "French",
    "it": "Italian",
}


#: Spoken question answering (IWSLT25 / paper Sec. 4.2); ``{question}`` is filled per item.
SQA_INSTRUCTION = "Based on the speech segment, can you answer the following question: {question}"


#: Noise-injection experiment (App. A.3, B.3): the user prompt and the assistant prefix that is
#: forced after the assistant header to stop verbose answers.
NOISE_INJECTION_PROMPT = (
    f"Repeat only the following sentence one more time and nothing else: {PLACEHOLDER}"
)


NOISE_INJECTION_ASSISTANT_PREFIX = "\n\nHere is the sentence : "


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


def st_instruction(target_lang, instructions=None):
    """The ST instruction written in the target language.

    Arguments
    ---------
    target_lang : str
        ISO 639-1 code (``de``, ``zh``, ``es``, ``fr``, ``it``).
    instructions : dict, optional
        Replacement table (e.g. from YAML); defaults to ``ST_INSTRUCTIONS``.

    Returns
    -------
    str
        The instruction.

    Example
    -------
    >>> st_instruction("de")
    'Können Sie den Inhalt der Rede in den deutschen Text übersetzen?'
    """
    table = ST_INSTRUCTIONS if instructions is None else instructions
    if target_lang not in table:
        raise ValueError(
            f"No ST instruction for target language {target_lang!r}; supported: "
            f"{sorted(table)}. Add one under `st_instructions` in the YAML."
        )
    return table[target_lang]


def st_instructions_table(extra=None):
    """The paper's ST instructions with ``extra`` ones added (or replacing them), by target
    language: the ``st_instructions`` key of ``hparams/evaluate.yaml``.

    Example
    -------
    >>> table = st_instructions_table({"qaa": "Tobu?"})
    >>> table["qaa"], table["de"] == ST_INSTRUCTIONS["de"]
    ('Tobu?', True)
    """
    return {**ST_INSTRUCTIONS, **dict(extra or {})}


def sqa_instruction(question, template=SQA_INSTRUCTION):
    """The SQA instruction for one question.

    Arguments
    ---------
    question : str
        The question (any language; the answer is expected in that language).
    template : str
        A template with a ``{question}`` field.

    Returns
    -------
    str
        The instruction.

    Example
    -------
    >>> sqa_instruction("Who came?")
    'Based on the speech segment, can you answer the following question: Who came?'
    """
    if "{question}" not in template:
        raise ValueError(f"The SQA template must contain '{{question}}': {template!r}")
    if not str(question).strip():
        raise ValueError("Empty SQA question.")
    return template.replace("{question}", str(question).strip())


def task_prompt(
    task,
    target_lang=None,
    question=None,
    zero_shot=True,
    prefix=SPEECH_PREFIX,
    asr_instruction=ASR_INSTRUCTION,
    st_instructions=None,
    sqa_template=SQA_INSTRUCTION,
    suffix=None,
):
    """The user prompt of a task: prefix + instruction + (zero-shot) suffix (Table 12).

    Arguments
    ---------
    task : str
        ``"asr"``, ``"st"`` or ``"sqa"``.
    target_lang : str, optional
        ST target language.
    question : str, optional
        SQA question.
    zero_shot : bool
        Use ``ZERO_SHOT_SUFFIX`` (zero-shot evaluation) rather than ``IT_SUFFIX``.
    prefix : str
        ``SPEECH_PREFIX`` or ``TEXT_PREFIX`` (cascades).
    asr_instruction : str
        The ASR task instruction.
    st_instructions : dict, optional
        Target language -> ST instruction (default ``ST_INSTRUCTIONS``).
    sqa_template : str
        The SQA instruction template (with ``{question}``).
    suffix : str, optional
        Overrides the suffix chosen by ``zero_shot``.

    Returns
    -------
    str
        The user prompt, with the placeholder once.

    Example
    -------
    >>> task_prompt("st", "zh", zero_shot=False)
    'Speech segment: <speech>\\n你能把演讲内容翻译成中文吗?'
    """
    if task == "asr":
        instruction = asr_instruction
    elif task == "st":
        if not target_lang:
            raise ValueError("task 'st' needs a target language.")
        instruction = st_instruction(target_lang, st_instructions)
    elif task == "sqa":
        if question is None:
            raise ValueError("task 'sqa' needs a question.")
        instruction = sqa_instruction(question, sqa_template)
    else:
        raise ValueError(f"Unknown task {task!r}; expected 'asr', 'st' or 'sqa'.")
    if suffix is None:
        suffix = ZERO_SHOT_SUFFIX if zero_shot else IT_SUFFIX
    return build_prompt(instruction, prefix, suffix)


def fill_text(prompt, text, placeholder=PLACEHOLDER):
    """Put a text (e.g. a transcript, for cascades) where the speech placeholder is.

    Arguments
    ---------
    prompt : str
        A prompt with the placeholder once.
    text : str
        The text to insert.
    placeholder : str
        The placeholder.

    Returns
    -------
    str
        The text prompt.

    Example
    -------
    >>> fill_text(build_prompt(ASR_INSTRUCTION, TEXT_PREFIX), "hello")
    'Text segment: hello\\nCan you transcribe the content in English text?'
    """
    check_prompt(prompt, placeholder)
    return prompt.replace(placeholder, text)


#: The answer to an unanswerable SQA question (IWSLT25 controlled QA setting: an invalid
#: question gets this specific answer, in the question's language; the talk shows the English
#: and Chinese ones, the German and Italian ones are those of the project's data tools).
UNANSWERABLE_ANSWERS = {
    "en": "Not answerable.",
    "de": "Nicht zu beantworten.",
    "it": "Non è possibile rispondere.",
    "zh": "无法回答。",
}


#: Rewrites an extractive SQA answer into a fluent sentence (the *fluent* SQA variant: the talk
#: says the answers were rewritten with Llama and filtered by language ID, but neither paper
#: prints the prompt; this wording is the project's choice). Fields: ``{language}`` (English
#: name of the question's language), ``{question}``, ``{answer}`` (the extractive answer) and,
#: optionally, ``{context}`` (the passage).
FLUENT_ANSWER_PROMPT = (
    "Rewrite the short answer to the question below as one complete and fluent sentence in "
    "{language}. Keep the words of the short answer unchanged in your sentence and do not add "
    "any information.\n\n"
    "Question: {question}\n"
    "Short answer: {answer}\n\n"
    "Reply with the sentence only."
)
