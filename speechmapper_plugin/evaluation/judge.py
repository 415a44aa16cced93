"""LLM-as-judge for spoken question answering: a yes/no answer-equivalence check.

The SQA protocol of the SpeechMapper paper (Sec. 3, "Inference and evaluation") is the one of
the IWSLT 2025 system: BERGEN's LLM judge, run with several judges whose accuracies are
averaged (paper: EuroLLM-9B-Instruct, Gemma3-12B/27B-Instruct, Llama3.1-70B-Instruct); Table 2
prints the mean with the spread over the judges. Three protocols (``protocol=``):

- ``"bergen"`` (default): BERGEN's prompt and decision rule (``evaluation.bergen``): the
  judge's next-token probabilities of "Yes" and "No" after the prompt; an item scores p(Yes),
  every item gets a score, the judge's accuracy is the mean (x100).
- ``"bergen-text"``: BERGEN's text mode (its vLLM path): greedy reply of at most 10 tokens,
  "Yes"/"No" as case-sensitive substrings, undecided replies left out of the mean.
- ``"freeform"``: this project's earlier judge: :data:`JUDGE_PROMPT` (context, question,
  references, candidate), a greedy reply read by :func:`parse_verdict`; invalid replies are
  left out of the accuracy and counted.

- :class:`LLMJudge` loads one judge and judges a set of answers in batches.
- :func:`judge_answers` runs several judges in turn, averages their accuracies and gives
  their spread (population standard deviation over judges).

Authors
-------
speechmapper developers, 2026
"""

import gc
import inspect
import logging
import math
import re
import string

import torch

import speechmapper_plugin.evaluation.bergen as bergen
from speechmapper_plugin.models.frozen_llm import _check_model_files, _parse_dtype
from speechmapper_plugin.models.hub import MODEL_FILE_PATTERNS, resolve_source
from speechmapper_plugin.models.tokens import end_of_turn_token, load_tokenizer
from speechmapper_plugin.utils.progress import progress_bar

logger = logging.getLogger(__name__)


# The four judges of the paper (Sec. 3); their scores are averaged.
PAPER_JUDGES = [
    "utter-project/EuroLLM-9B-Instruct",
    "google/gemma-3-12b-it",
    "google/gemma-3-27b-it",
    "meta-llama/Llama-3.1-70B-Instruct",
]


JUDGE_PROMPT = (
    "You are grading the answer given to a reading-comprehension question. You get a context, "
    "a question about it, one or more correct reference answers and a candidate answer.\n"
    "The candidate is correct when it conveys the same information as at least one reference "
    "answer for this question: different wording, a full sentence instead of a short phrase, "
    "or extra details that agree with the context are fine. It is wrong when it gives other "
    "information, misses the essential part, contradicts the references, does not answer or "
    "is empty.\n\n"
    "Context: {context}\n"
    "Question: {question}\n"
    "Reference answer(s): {reference}\n"
    "Candidate answer: {answer}\n\n"
    "Is the candidate answer equivalent in meaning to the reference answer? "
    'Reply with exactly one word, "yes" or "no".'
)


REFERENCE_SEPARATOR = " | "


#: The judge protocols (see the module docstring); the first is the default.
PROTOCOLS = ("bergen", "bergen-text", "freeform")


def check_protocol(protocol):
    """The protocol name, or a ``ValueError`` listing the known ones.

    Example
    -------
    >>> check_protocol("bergen")
    'bergen'
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown judge protocol {protocol!r}; choose one of {PROTOCOLS}.")
    return protocol


PROMPT_FIELDS = ("context", "question", "reference", "answer")


# Leading decorations a judge may put before its verdict: markdown emphasis, headings,
# quotes, bullets, code ticks, brackets.
_LEADING = re.compile(r"^[\s*_#>`\"'“”‘’\-•·(\[{]+")


# An optional label such as "Answer:" or "Verdict -" before the verdict.
_LABEL = re.compile(
    r"^(?:final\s+)?(?:answer|verdict|judg(?:e)?ment|decision|output|response|assistant)"
    r"\s*[*_]*\s*[:\-]\s*"
)


_VERDICT = re.compile(r"^(yes|no)\b")


# "yes/no", "yes or no", "no and yes"...: the judge did not choose.
_BOTH = re.compile(
    r"^(?:yes|no)[\s*_`\"'”’.)]*(?:/|\||,?\s*or\b|,?\s*and\b)[\s*_`\"'“‘(]*(yes|no)\b"
)


def parse_verdict(text):
    """Reads a judge reply as a yes/no verdict.

    The verdict is the first word of the reply, after leading whitespace, markdown
    decorations (``**``, ``#``, ``>``, backticks, quotes, bullets) and an optional label
    such as ``Answer:``; case and trailing punctuation or explanations do not matter
    ("Yes, because ..." is yes). Anything else is invalid: another first word ("maybe",
    "Not equivalent", "The answer is yes"), an empty reply, or an undecided "yes/no",
    "yes or no", "no and yes".

    Arguments
    ---------
    text : str or None
        The judge's reply.

    Returns
    -------
    bool or None
        True for yes, False for no, None for an invalid reply.

    Example
    -------
    >>> parse_verdict("Yes, the answers match.")
    True
    >>> parse_verdict("  **No**")
    False
    >>> parse_verdict("Answer: yes")
    True
    >>> print(parse_verdict("maybe"), parse_verdict("Yes/No"), parse_verdict(""))
    None None None
    """
    if not isinstance(text, str):
        return None
    text = text.strip().lower()
    text = _LEADING.sub("", text)
    label = _LABEL.match(text)
    if label:
        text = _LEADING.sub("", text[label.end() :])
    match = _VERDICT.match(text)
    if match is None or _BOTH.match(text):
        return None
    return match.group(1) == "yes"


def format_references(reference):
    """One reference answer, or several joined with :data:`REFERENCE_SEPARATOR`.

    Arguments
    ---------
    reference : str or list of str
        The reference answer(s) of one question.

    Returns
    -------
    str
        The text given to the judge.

    Example
    -------
    >>> format_references(["Paris", " the city of Paris "])
    'Paris | the city of Paris'
    >>> format_references("Paris")
    'Paris'
    """
    if isinstance(reference, str):
        return reference.strip()
    if isinstance(reference, (list, tuple)):
        if not reference or not all(isinstance(item, str) for item in reference):
            raise ValueError(
                f"A list of reference answers must hold at least one str, got {reference!r}."
            )
        return REFERENCE_SEPARATOR.join(item.strip() for item in reference)
    raise TypeError(
        f"A reference answer must be a str or a list of str, got {type(reference).__name__}: "
        f"{reference!r}"
    )


def check_prompt(prompt):
    """Checks that a judge prompt template has exactly the four expected fields.

    Arguments
    ---------
    prompt : str
        A template with ``{context}``, ``{question}``, ``{reference}`` and ``{answer}``
        (literal braces are written ``{{`` and ``}}``).

    Returns
    -------
    str
        The template.

    Example
    -------
    >>> check_prompt("{context} {question} {reference} {answer}")
    '{context} {question} {reference} {answer}'
    >>> check_prompt("{question} {answer}")
    Traceback (most recent call last):
    ...
    ValueError: Judge prompt misses the field(s) ['context', 'reference']: ...
    """
    if not isinstance(prompt, str):
        raise TypeError(f"The judge prompt must be a str, got {type(prompt).__name__}.")
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(prompt) if name is not None}
    except ValueError as err:
        raise ValueError(
            f"Judge prompt is not a valid format string ({err}); write literal braces as "
            "{{ and }}."
        ) from err
    missing = [name for name in PROMPT_FIELDS if name not in fields]
    unknown = sorted(fields - set(PROMPT_FIELDS))
    if missing:
        raise ValueError(
            f"Judge prompt misses the field(s) {missing}: it must contain {{context}}, "
            "{question}, {reference} and {answer}."
        )
    if unknown:
        raise ValueError(
            f"Judge prompt has unknown field(s) {unknown}; only {list(PROMPT_FIELDS)} are "
            "filled (write literal braces as {{ and }})."
        )
    return prompt


def _check_items(contexts, questions, references, answers):
    """Lists of equal, non-zero length; answers must be str (empty ones are kept)."""
    columns = {
        "contexts": list(contexts),
        "questions": list(questions),
        "references": list(references),
        "answers": list(answers),
    }
    counts = {name: len(values) for name, values in columns.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(
            "contexts, questions, references and answers must have the same length, got "
            + ", ".join(f"{count} {name}" for name, count in counts.items())
            + "."
        )
    if counts["answers"] == 0:
        raise ValueError("Nothing to judge: the lists of answers and references are empty.")
    for name in ("contexts", "questions", "answers"):
        for index, value in enumerate(columns[name]):
            if not isinstance(value, str):
                raise TypeError(
                    f"{name}[{index}] must be a str (use '' for an empty one), got "
                    f"{type(value).__name__}: {value!r}"
                )
    return columns["contexts"], columns["questions"], columns["references"], columns["answers"]


def _summary(verdicts):
    """Accuracies of a list of verdicts (True / False / None)."""
    total = len(verdicts)
    yes = sum(1 for verdict in verdicts if verdict is True)
    valid = sum(1 for verdict in verdicts if verdict is not None)
    return {
        "accuracy": 100.0 * yes / valid if valid else float("nan"),
        "accuracy_all": 100.0 * yes / total if total else float("nan"),
        "yes": yes,
        "valid": valid,
        "invalid": total - valid,
        "num_items": total,
    }


def _free_memory(device):
    gc.collect()
    if torch.cuda.is_available() and str(device) != "cpu":
        torch.cuda.empty_cache()


class LLMJudge:
    """One judge LLM giving yes/no equivalence verdicts (see :data:`PROTOCOLS`).

    ``bergen`` and ``bergen-text``: BERGEN's messages (``evaluation.bergen``) through the
    judge's chat template, re-tokenized with the special tokens as BERGEN does. ``freeform``:
    :data:`JUDGE_PROMPT` (or ``prompt``) as a user message through the chat template (a
    tokenizer without one gets the raw text, logged). Items are judged in batches with left
    padding; ``bergen`` reads the next-token logits of one forward pass (position ids from the
    attention mask, as ``generate`` builds them), the text protocols decode greedily
    (``do_sample=False``, the model's sampling defaults ignored) and stop on the eos /
    end-of-turn ids. Batching does not change the verdicts.

    Arguments
    ---------
    source : str or Path
        A hub id (e.g. ``utter-project/EuroLLM-9B-Instruct``) or a local model folder.
    dtype : str or torch.dtype
        Weight dtype ("bfloat16" as BERGEN, "float16", "float32" or "auto").
    batch_size : int
        Items judged together.
    max_new_tokens : int, optional
        Maximum reply length of the text protocols (default: 10 for ``bergen-text`` as
        BERGEN, 5 for ``freeform``).
    prompt : str, optional
        The ``freeform`` template (see :func:`check_prompt`; default :data:`JUDGE_PROMPT`).
    cache_dir : str or Path, optional
        The hub cache.
    device : str or torch.device, optional
        Where to load the judge: default "cuda" when available, else "cpu"; "auto" spreads a
        large judge (Llama-3.1-70B) over all GPUs (and CPU) with accelerate.
    protocol : str
        ``bergen`` (default), ``bergen-text`` or ``freeform``.

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["Yes", "No", "Yes it is", "No it is not"] * 4)
    >>> judge = LLMJudge(folder, dtype="float32", device="cpu")
    >>> result = judge.judge(["a cat sat"], ["who sat?"], [["a cat", "the cat"]], ["the cat"])
    >>> sorted(result)
    ['accuracy', 'invalid', 'num_items', 'scores', 'valid']
    >>> 0.0 < result["scores"][0] < 1.0, result["invalid"]
    (True, 0)
    """

    def __init__(
        self,
        source,
        dtype="bfloat16",
        batch_size=8,
        max_new_tokens=None,
        prompt=None,
        cache_dir=None,
        device=None,
        protocol="bergen",
    ):
        from transformers import AutoModelForCausalLM

        self.protocol = check_protocol(protocol)
        if prompt is not None and protocol != "freeform":
            raise ValueError(
                f"prompt= sets the freeform judge's template; the {protocol} protocol uses "
                "BERGEN's prompt (evaluation.bergen)."
            )
        if max_new_tokens is None:
            max_new_tokens = bergen.MAX_NEW_TOKENS if protocol == "bergen-text" else 5
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        if int(max_new_tokens) < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens!r}.")
        self.prompt = check_prompt(JUDGE_PROMPT if prompt is None else prompt)
        self.source = str(source)
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        folder = resolve_source(source, cache_dir=cache_dir, allow_patterns=MODEL_FILE_PATTERNS)
        _check_model_files(folder, source)
        self.tokenizer = load_tokenizer(folder)
        self.option_ids = None
        if protocol == "bergen":  # checked before the weights are loaded
            self.option_ids = bergen.option_token_ids(self.tokenizer, self.source)
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        kwargs = {"dtype": _parse_dtype(dtype)}
        kwargs["device_map"] = "auto" if device == "auto" else {"": torch.device(device)}
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        self.model.requires_grad_(False)
        self.model.eval()
        self.stop_ids = self._stop_ids()
        if protocol == "freeform":
            pad_id = self.tokenizer.pad_token_id
            self.pad_id = int(pad_id if pad_id is not None else self.stop_ids[0])
        else:  # BERGEN: bos, else pad, else eos (masked out anyway)
            tok = self.tokenizer
            pad = next(
                i for i in (tok.bos_token_id, tok.pad_token_id, self.stop_ids[0]) if i is not None
            )
            self.pad_id = int(pad)
        self._warned_no_template = False
        self._bos_id = None
        bos_id = self.tokenizer.bos_token_id
        if bos_id is not None:
            probe = self.tokenizer("a")["input_ids"]
            if probe and probe[0] == bos_id:
                self._bos_id = int(bos_id)
        logger.info(
            "Judge %s loaded (%s, %s, protocol %s), stops on %s, pads with %d",
            self.source,
            self.model.dtype,
            device,
            protocol,
            self.stop_ids,
            self.pad_id,
        )

    def _stop_ids(self):
        ids = []
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        config_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if config_eos is not None:
            ids += [int(i) for i in ([config_eos] if isinstance(config_eos, int) else config_eos)]
        if getattr(self.tokenizer, "chat_template", None):
            try:
                ids.append(end_of_turn_token(self.tokenizer)[1])
            except ValueError:
                pass
        if not ids:
            raise ValueError(
                f"Judge {self.source} has no eos token (tokenizer or generation config): "
                "decoding could not stop; give a model with an eos token."
            )
        return list(dict.fromkeys(ids))

    def _no_template_warning(self):
        if not self._warned_no_template:
            logger.warning(
                "Judge %s: the tokenizer has no chat template, the raw prompt is used.",
                self.source,
            )
            self._warned_no_template = True

    def prompts(self, contexts, questions, references, answers):
        """The texts fed to the judge (its protocol's prompt, chat template applied).

        Arguments
        ---------
        contexts, questions, references, answers : list
            One entry per item (see :meth:`judge`; BERGEN's prompt has no context).

        Returns
        -------
        list of str
            The rendered prompts.
        """
        contexts, questions, references, answers = _check_items(
            contexts, questions, references, answers
        )
        template = getattr(self.tokenizer, "chat_template", None)
        if self.protocol != "freeform":
            with_system = bool(template) and "system" in template
            conversations = [
                bergen.messages(question, reference, answer, with_system=with_system)
                for question, reference, answer in zip(questions, references, answers)
            ]
            if not template:
                self._no_template_warning()
                return [conversation[-1]["content"] for conversation in conversations]
            return [
                self.tokenizer.apply_chat_template(
                    conversation, tokenize=False, add_generation_prompt=True
                )
                for conversation in conversations
            ]
        messages = [
            self.prompt.format(
                context=context.strip(),
                question=question.strip(),
                reference=format_references(reference),
                answer=answer.strip(),
            )
            for context, question, reference, answer in zip(
                contexts, questions, references, answers
            )
        ]
        if not template:
            self._no_template_warning()
            return messages
        return [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
            )
            for message in messages
        ]

    def _encode(self, text):
        if self.protocol != "freeform":
            # BERGEN re-tokenizes the rendered text with the special tokens (and truncates).
            limit = getattr(self.tokenizer, "model_max_length", None)
            limit = limit if isinstance(limit, int) and limit < 10**7 else None
            ids = self.tokenizer(text, truncation=limit is not None, max_length=limit)
            return list(ids["input_ids"])
        # The chat template writes the bos token itself (when the model uses one); a
        # template that does not gets it prepended, as the tokenizer would.
        ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
        if self._bos_id is not None and (not ids or ids[0] != self._bos_id):
            ids = [self._bos_id] + ids
        return ids

    def _batches(self, texts):
        """``(indices, ids, mask)`` of left-padded batches, longest prompts first."""
        encoded = [self._encode(text) for text in texts]
        # Longest first, so each batch holds prompts of similar lengths (less padding).
        order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index]))
        device = self.model.get_input_embeddings().weight.device
        starts = range(0, len(order), self.batch_size)
        bar = progress_bar(
            starts, desc=f"judge {self.source}", unit="batch", enable=len(starts) > 1
        )
        for first in bar:
            batch = order[first : first + self.batch_size]
            width = max(len(encoded[index]) for index in batch)
            ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, index in enumerate(batch):
                length = len(encoded[index])
                ids[row, width - length :] = torch.tensor(encoded[index])
                mask[row, width - length :] = 1
            yield batch, ids.to(device), mask.to(device)

    @torch.no_grad()
    def yes_probabilities(self, texts):
        """BERGEN's decision: p(Yes) among {Yes, No} for the first token after each prompt.

        Arguments
        ---------
        texts : list of str
            Prompts as returned by :meth:`prompts`.

        Returns
        -------
        list of float
        """
        no_id, yes_id = self.option_ids
        scores = [None] * len(texts)
        keep = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        for batch, ids, mask in self._batches(texts):
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
            kwargs = {"logits_to_keep": 1} if keep else {}
            logits = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=False,
                **kwargs,
            ).logits[:, -1]
            pair = logits[:, [no_id, yes_id]].float().softmax(-1)[:, 1].cpu().tolist()
            for index, value in zip(batch, pair):
                scores[index] = float(value)
        return scores

    @torch.no_grad()
    def generate(self, texts):
        """Greedy replies to rendered prompts (batched, left padding).

        Arguments
        ---------
        texts : list of str
            Prompts as returned by :meth:`prompts`.

        Returns
        -------
        list of str
            The replies (special tokens skipped, stripped).
        """
        from transformers import GenerationConfig

        config = GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=list(self.stop_ids),
            pad_token_id=self.pad_id,
        )
        kwargs = {"generation_config": config}
        if "use_model_defaults" in inspect.signature(self.model.generate).parameters:
            kwargs["use_model_defaults"] = False
        replies = [None] * len(texts)
        for batch, ids, mask in self._batches(texts):
            output = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            width = ids.shape[1]
            for row, index in enumerate(batch):
                new = output[row, width:].tolist()
                cut = next((i for i, tok in enumerate(new) if tok in self.stop_ids), len(new))
                replies[index] = self.tokenizer.decode(new[:cut], skip_special_tokens=True)
        return [reply.strip() for reply in replies]

    def judge(self, contexts, questions, references, answers):
        """Judges generated answers against reference answers.

        Arguments
        ---------
        contexts : list of str
            The reference contexts (passages or transcripts; only the freeform prompt
            shows them).
        questions : list of str
            The questions.
        references : list of str or list of list of str
            The reference answer(s) of each question.
        answers : list of str
            The generated answers; empty ones are judged too.

        Returns
        -------
        dict
            ``accuracy`` (percent): ``bergen``: mean p(Yes) over all items; ``bergen-text``:
            mean verdict over the valid replies; ``freeform``: percent of yes among the
            valid replies (NaN if no reply is valid). ``scores`` (per item: p(Yes), 1/0, or
            None for an invalid reply), ``valid``, ``invalid``, ``num_items``; the text
            protocols add ``accuracy_all`` (invalid counted as no) and ``raw`` (the
            replies); ``freeform`` adds ``yes`` and ``verdicts`` (True / False / None).
        """
        texts = self.prompts(contexts, questions, references, answers)
        if self.protocol == "bergen":
            scores = self.yes_probabilities(texts)
            return {
                "accuracy": 100.0 * sum(scores) / len(scores),
                "scores": scores,
                "valid": len(scores),
                "invalid": 0,
                "num_items": len(scores),
            }
        raw = self.generate(texts)
        if self.protocol == "bergen-text":
            scores = [bergen.text_verdict(reply) for reply in raw]
            valid = [score for score in scores if score is not None]
            result = {
                "accuracy": 100.0 * sum(valid) / len(valid) if valid else float("nan"),
                "accuracy_all": 100.0 * sum(valid) / len(scores),
                "scores": scores,
                "valid": len(valid),
                "invalid": len(scores) - len(valid),
                "num_items": len(scores),
            }
        else:
            verdicts = [parse_verdict(reply) for reply in raw]
            result = _summary(verdicts)
            result["verdicts"] = verdicts
            result["scores"] = [None if v is None else float(v) for v in verdicts]
        if result["invalid"]:
            examples = [reply for reply, score in zip(raw, result["scores"]) if score is None][:3]
            logger.warning(
                "Judge %s: %d of %d replies are neither yes nor no (e.g. %s).",
                self.source,
                result["invalid"],
                len(raw),
                examples,
            )
        result["raw"] = raw
        return result

    def close(self):
        """Frees the judge's weights (and the CUDA cache when on GPU)."""
        if getattr(self, "model", None) is not None:
            del self.model
            self.model = None
        _free_memory(self.device)


def judge_answers(contexts, questions, references, answers, judges, **kwargs):
    """Judges answers with several LLMs in turn, averages their accuracies and gives their
    spread (the "±" of the paper's Table 2).

    All judges are resolved first (a missing one fails before any is run), then each is
    loaded, run and freed before the next one, so only one judge is in memory at a time.

    Arguments
    ---------
    contexts, questions, references, answers : list
        The items (see :meth:`LLMJudge.judge`).
    judges : list of str
        Judge hub ids or local folders (paper: :data:`PAPER_JUDGES`).
    **kwargs
        Passed to :class:`LLMJudge` (``protocol``, ``dtype``, ``batch_size``,
        ``max_new_tokens``, ``prompt``, ``cache_dir``, ``device``).

    Returns
    -------
    dict
        ``accuracy``: mean of the judges' accuracies (NaN if a judge gave no valid reply);
        ``std``: their population standard deviation (ddof=0) over the judges;
        ``invalid``: invalid replies over all judges; ``num_items``; ``protocol``;
        ``per_judge``: {source: the judge's result without ``raw``}; the text protocols add
        ``accuracy_all`` (mean over judges, invalid replies counted as no).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["Yes", "No", "Yes it is", "No it is not"] * 4)
    >>> out = judge_answers(["c"], ["q"], ["yes"], ["no"], [folder], dtype="float32",
    ...                     device="cpu")
    >>> out["protocol"], out["num_items"], out["std"]
    ('bergen', 1, 0.0)
    """
    if isinstance(judges, str) or not hasattr(judges, "__iter__"):
        judges = [judges]
    judges = [str(source) for source in judges]
    if not judges:
        raise ValueError("judge_answers needs at least one judge (hub id or local folder).")
    duplicates = sorted({source for source in judges if judges.count(source) > 1})
    if duplicates:
        raise ValueError(f"Judges listed more than once: {duplicates}.")
    protocol = check_protocol(kwargs.get("protocol", "bergen"))
    items = _check_items(contexts, questions, references, answers)
    for reference in items[2]:
        format_references(reference)
    if kwargs.get("prompt") is not None:
        check_prompt(kwargs["prompt"])
    folders = {
        source: resolve_source(
            source, cache_dir=kwargs.get("cache_dir"), allow_patterns=MODEL_FILE_PATTERNS
        )
        for source in judges
    }
    per_judge = {}
    for source in judges:
        judge = LLMJudge(folders[source], **kwargs)
        judge.source = source
        try:
            result = judge.judge(*items)
        finally:
            judge.close()
            del judge
        result.pop("raw", None)
        per_judge[source] = result
        logger.info(
            "Judge %s (%s): accuracy %.2f%% (%d invalid)",
            source,
            protocol,
            result["accuracy"],
            result["invalid"],
        )
    accuracies = [result["accuracy"] for result in per_judge.values()]
    mean = sum(accuracies) / len(accuracies)
    std = math.sqrt(sum((value - mean) ** 2 for value in accuracies) / len(accuracies))
    out = {
        "accuracy": mean,
        "std": std,
        "invalid": sum(result["invalid"] for result in per_judge.values()),
        "num_items": len(items[3]),
        "protocol": protocol,
        "per_judge": per_judge,
    }
    if protocol != "bergen":
        out["accuracy_all"] = sum(r["accuracy_all"] for r in per_judge.values()) / len(per_judge)
    return out
