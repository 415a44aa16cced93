"""BERGEN's LLM-as-judge protocol (naver/bergen, ``models/evaluators/llm.py`` with the
``config/evaluator/default_qa.yaml`` prompt), which the SpeechMapper paper uses for SQA ("the
same LLM-as-judge protocol and scripts" as the IWSLT 2025 system, Sec. 3).

- **Prompt**: a system message and a user message naming the question, the golden answer(s)
  and the generated answer; the choices are ``Yes, No``. A judge whose chat template has no
  ``system`` role gets BERGEN's one-message variant (:data:`USER_WITHOUT_SYSTEM`). The texts
  are BERGEN's, rendered as its evaluator renders them (odd spaces included). The golden
  answers are written as BERGEN writes its label lists, the Python list ``['a', 'b']``.
  BERGEN's prompt has no context field.
- **Tokenization**: the chat-templated text is tokenized again *with* the tokenizer's special
  tokens, as BERGEN does (a template that writes the BOS token itself then gets two), padded
  on the left.
- **Decision** (``use_logits: True``, BERGEN's default for Hugging Face judges): the logits of
  the first generated token at the first token ids of ``"No"`` and ``"Yes"``
  (``tokenizer.encode(option, add_special_tokens=False)[0]``), softmaxed over these two; the
  item's score is p(Yes). Every item gets a score; the judge's accuracy is their mean.
- **Text mode** (BERGEN's vLLM path, ``use_logits: False``): greedy decoding of at most 10
  tokens; a reply counts as Yes (1) or No (0) when exactly one of the two options is a
  case-sensitive substring of it, otherwise it is invalid and left out of the mean.

BERGEN is (c) NAVER Corp., CC BY-NC-SA 4.0; the prompt strings below are reproduced from its
``default_qa.yaml`` so that the scores are comparable with the papers'.

Authors
-------
speechmapper developers, 2026
"""

#: The judge's choices and their values, in BERGEN's order.
OPTIONS = {"Yes": 1.0, "No": 0.0}


_CHOICES = ", ".join(OPTIONS)  # "Yes, No"


SYSTEM = f"You are an evaluation tool. Answer with one of {_CHOICES}."


USER = (
    "Here is a question, a golden answer and an AI-generated answer. Can you judge whether "
    "the AI-generated answer is correct according to the question and golden answer, simply "
    f"answer with one of {_CHOICES}.\n Question: {{question}}. \nGolden answer: {{answer}} "
    "\n Generated answer: {prediction}"
)


USER_WITHOUT_SYSTEM = (
    f"You are an evaluation tool. Just answer by {_CHOICES}. Here is a question, a golden "
    "answer and an AI-generated answer. Judge whether the AI-generated answer is correct "
    f"according to the question and golden answer, answer with {_CHOICES}.\nQuestion: "
    "{question}.\nGolden answer: {answer}\nGenerated answer: {prediction}"
)


#: BERGEN's ``max_new_tokens`` (text mode).
MAX_NEW_TOKENS = 10


def golden_answer(reference):
    """The golden answer(s) as BERGEN writes them into the prompt: a Python list.

    Arguments
    ---------
    reference : str or list of str
        The reference answer(s) of one question.

    Returns
    -------
    str

    Example
    -------
    >>> golden_answer(["Paris", " the city of Paris "])
    "['Paris', 'the city of Paris']"
    >>> golden_answer("Paris")
    "['Paris']"
    """
    references = [reference] if isinstance(reference, str) else list(reference)
    return str([str(item).strip() for item in references])


def messages(question, reference, prediction, with_system=True):
    """The chat messages of one item.

    Arguments
    ---------
    question : str
        The question.
    reference : str or list of str
        The reference answer(s).
    prediction : str
        The generated answer (may be empty).
    with_system : bool
        The judge's chat template has a system role (else BERGEN's one-message variant).

    Returns
    -------
    list of dict

    Example
    -------
    >>> print(messages("Who sat?", ["the cat"], "a cat")[1]["content"])
    Here is a question, a golden answer and an AI-generated answer. Can you judge whether the AI-generated answer is correct according to the question and golden answer, simply answer with one of Yes, No.
     Question: Who sat?.
    Golden answer: ['the cat']
     Generated answer: a cat
    """
    fields = {
        "question": question,
        "answer": golden_answer(reference),
        "prediction": prediction,
    }
    if with_system:
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER.format(**fields)},
        ]
    return [{"role": "user", "content": USER_WITHOUT_SYSTEM.format(**fields)}]


def option_token_ids(tokenizer, source="the judge"):
    """The first token id of ``"No"`` and of ``"Yes"`` (BERGEN's sorted option order).

    Raises
    ------
    ValueError
        The two options start with the same token (e.g. a tokenizer that splits off a
        leading space): the decision rule would be a coin toss.

    Example
    -------
    >>> class Tok:
    ...     def encode(self, text, add_special_tokens=True):
    ...         return {"No": [7, 8], "Yes": [9]}[text]
    >>> option_token_ids(Tok())
    (7, 9)
    """
    ids = {}
    for option in sorted(OPTIONS):
        encoded = tokenizer.encode(option, add_special_tokens=False)
        if not encoded:
            raise ValueError(f"{source}: the tokenizer encodes {option!r} as no token.")
        ids[option] = int(encoded[0])
    if ids["No"] == ids["Yes"]:
        raise ValueError(
            f"{source}: 'Yes' and 'No' start with the same token ({ids['Yes']}), so BERGEN's "
            "next-token decision cannot tell them apart; use another judge or "
            "judge_protocol=bergen-text."
        )
    return ids["No"], ids["Yes"]


def text_verdict(reply):
    """BERGEN's text-mode reading of a reply: 1.0 (Yes), 0.0 (No) or None (invalid).

    An option counts when it is a case-sensitive substring of the reply; exactly one must.

    Example
    -------
    >>> text_verdict("Yes."), text_verdict("No"), text_verdict("Not sure")
    (1.0, 0.0, 0.0)
    >>> print(text_verdict("yes"), text_verdict("Yes or No"))
    None None
    """
    found = [value for option, value in OPTIONS.items() if option in (reply or "")]
    return found[0] if len(found) == 1 else None
