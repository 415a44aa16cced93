"""The frozen LLM of stage 2 (paper Sec. 2.3): ``FrozenLLM`` loads a causal LLM by hub id
(e.g. ``meta-llama/Llama-3.1-8B-Instruct``, ``utter-project/EuroLLM-9B-Instruct``) or local
folder, splices projector outputs into its chat prompt at a placeholder
(``build_inputs``) and computes the cross-entropy on the answer tokens (``forward``, the CE
of eq. 3). Greedy decoding comes from ``generation.GreedyGeneration``; stage 1 needs only the
embedding table (``embeddings.EmbeddingTable``), never this class.

Authors
-------
speechmapper developers, 2026
"""

import inspect
import json
import logging

import torch

from speechmapper_plugin.models.embeddings import EmbeddingTable, speech_lengths
from speechmapper_plugin.models.generation import GreedyGeneration
from speechmapper_plugin.models.hub import (
    MODEL_FILE_PATTERNS,
    SAFETENSORS_INDEX,
    SAFETENSORS_SINGLE,
    resolve_source,
)
from speechmapper_plugin.models.tokens import end_of_turn_token, select_pad_token

logger = logging.getLogger(__name__)


IGNORE_INDEX = -100


_MARKER = "\n"


_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
}


class InputTooLong(ValueError):
    """Inputs whose prompt + speech vectors + new tokens exceed the LLM's positions.

    ``rows`` holds ``(index, speech vectors, prompt tokens)`` per input over the limit;
    ``limit`` is the LLM's ``max_position_embeddings``, ``max_new_tokens`` the decoding budget.
    """

    def __init__(self, message, rows, limit, max_new_tokens):
        super().__init__(message)
        self.rows, self.limit, self.max_new_tokens = rows, limit, max_new_tokens


def _parse_dtype(dtype):
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return "auto"
    key = str(dtype).replace("torch.", "").lower()
    if key not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of {sorted(_DTYPES)} or 'auto'.")
    return _DTYPES[key]


def _check_model_files(folder, source):
    """Fails early with a clear message when a (cached) checkpoint misses weight files."""
    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (OSError, ValueError, KeyError) as err:
            raise ValueError(f"Unreadable safetensors index {index}: {err}") from err
        missing = [shard for shard in shards if not (folder / shard).is_file()]
    else:
        missing = [] if any(folder.glob("*.safetensors")) else [SAFETENSORS_SINGLE]
    if missing:
        raise FileNotFoundError(
            f"The checkpoint of {source} in {folder} misses {missing} (only the embeddings or "
            f"tokenizer were downloaded?). Run `huggingface-cli download {source}` or give a "
            "complete local folder."
        )


class FrozenLLM(GreedyGeneration, torch.nn.Module):
    """A frozen causal LLM fed with projector outputs spliced into its chat prompt.

    The model is loaded with ``AutoModelForCausalLM`` / ``AutoTokenizer`` from a hub id or a
    local folder, has ``requires_grad=False`` everywhere and stays in eval mode even when
    ``train()`` is called (so ``Brain.fit`` never turns its dropout on). It has no trainable
    parameters, hence SpeechBrain does not wrap it in DDP; do not add it to the checkpointer's
    recoverables (it would save the LLM weights).

    Arguments
    ---------
    source : str or Path
        A hub id (e.g. ``meta-llama/Llama-3.1-8B-Instruct``) or a local folder.
    dtype : str or torch.dtype
        Weight dtype ("bfloat16", "float16", "float32" or "auto").
    pad_token : str
        The reserved pad token (see :func:`select_pad_token`); it also pads batches.
    placeholder : str
        The text marking where the speech embeddings go in a user prompt.
    system_prompt : str, optional
        A system message added to every conversation.
    cache_dir : str or Path, optional
        The hub cache.
    revision : str, optional
        Hub revision.
    attn_implementation : str
        "sdpa", "eager" or "flash_attention_2".
    device : str or torch.device, optional
        Load the weights directly on this device.
    reuse_prompt_prefix : bool
        Training speed lever (``forward``): the keys and values of the prompt ids that every
        row of a batch starts with (chat header, system prompt, instruction before the
        speech) do not depend on the projector, so they are computed once per distinct prefix
        and reused by every later batch instead of being recomputed (forward and backward).
        Only while every LLM weight is frozen (not with trainable LoRA adapters).
    static_cache : bool
        Decoding engine (``generation``): Hugging Face's static KV cache instead of the dynamic
        one (fixed shapes; same greedy outputs).
    compile_decoding : bool
        Decoding engine: static cache, and each decoding step compiled by ``torch.compile``
        (CUDA graphs on GPU; set ``decoding_compile_config`` to another
        ``transformers.CompileConfig`` to change how).
    causal_mask_only : bool
        Training speed lever (``forward`` without ``reuse_prompt_prefix``): right-padded
        training batches are run without their attention mask. Causal attention alone gives
        the same values at every non-padding position, and lets SDPA use its flash kernel
        (and grouped-query attention without repeating the keys and values).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> folder = build_tiny_llm(tempfile.mkdtemp(), ["the cat sat", "the dog ran"])
    >>> llm = FrozenLLM(folder, dtype="float32")
    >>> speech = torch.randn(2, 5, llm.embed_dim, requires_grad=True)
    >>> lens = torch.tensor([1.0, 0.6])
    >>> out = llm(speech, lens, ["<speech>\\nrepeat"] * 2, ["the cat sat", "the dog"])
    >>> out["loss"].backward()
    >>> speech.grad.abs().sum() > 0
    tensor(True)
    >>> texts = llm.generate(speech.detach(), lens, ["<speech>\\nrepeat"] * 2, max_new_tokens=3)
    >>> len(texts)
    2
    """

    def __init__(
        self,
        source,
        *,
        dtype="bfloat16",
        pad_token="auto",
        placeholder="<speech>",
        system_prompt=None,
        cache_dir=None,
        revision=None,
        attn_implementation="sdpa",
        device=None,
        reuse_prompt_prefix=False,
        causal_mask_only=False,
        static_cache=False,
        compile_decoding=False,
    ):
        super().__init__()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not placeholder:
            raise ValueError("The speech placeholder must be a non-empty string.")
        folder = resolve_source(
            source, cache_dir=cache_dir, revision=revision, allow_patterns=MODEL_FILE_PATTERNS
        )
        _check_model_files(folder, source)
        self.source = str(source)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        kwargs = {"dtype": _parse_dtype(dtype)}
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        if device is not None:
            kwargs["device_map"] = {"": torch.device(device)}
        self.model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
        self.model.requires_grad_(False)
        self.model.eval()
        self.placeholder = placeholder
        self.system_prompt = system_prompt
        self.pad_token, self.pad_id = select_pad_token(self.tokenizer, pad_token)
        self.eot_token, self.eot_id = end_of_turn_token(self.tokenizer)
        self.embed_dim = self.model.get_input_embeddings().embedding_dim
        if self.pad_id >= self.model.get_input_embeddings().num_embeddings:
            raise ValueError(
                f"Pad token {self.pad_token!r} (id {self.pad_id}) is outside the embedding "
                f"table of {source}."
            )
        self.eos_ids = self._stop_ids()
        bos_id = self.tokenizer.bos_token_id
        self._bos_id = None
        if bos_id is not None:
            probe = self.tokenizer("a")["input_ids"]
            if probe and probe[0] == bos_id:
                self._bos_id = int(bos_id)
        self._marker_ids = list(self.tokenizer(_MARKER, add_special_tokens=False)["input_ids"])
        self._prompt_cache = {}
        self._keeps_logits = "logits_to_keep" in inspect.signature(self.model.forward).parameters
        self.reuse_prompt_prefix = bool(reuse_prompt_prefix)
        self.causal_mask_only = bool(causal_mask_only)
        self.static_cache = bool(static_cache)
        self.compile_decoding = bool(compile_decoding)
        self.decoding_compile_config = None
        self._prefix_kv = {}
        logger.info(
            "Frozen LLM %s: dim %d, %s, pad %r (id %d), end of turn %r, stops on %s",
            source,
            self.embed_dim,
            self.model.dtype,
            self.pad_token,
            self.pad_id,
            self.eot_token,
            self.eos_ids,
        )

    def _stop_ids(self):
        ids = {self.eot_id}
        if self.tokenizer.eos_token_id is not None:
            ids.add(int(self.tokenizer.eos_token_id))
        config_eos = getattr(self.model.generation_config, "eos_token_id", None)
        if config_eos is not None:
            ids.update(
                int(i) for i in ([config_eos] if isinstance(config_eos, int) else config_eos)
            )
        return sorted(ids)

    def train(self, mode=True):
        """Keeps the frozen LLM in eval mode whatever ``mode`` is; only the dropout of LoRA
        adapters (``lora.attach_lora``), if any, follows ``mode`` (returns self)."""
        super().train(False)
        self._prefix_kv = {}  # recomputed in each stage (weights may have been loaded since)
        if mode and hasattr(self.model, "peft_config"):
            for name, module in self.model.named_modules():
                if name.rsplit(".", 2)[-2:-1] == ["lora_dropout"]:
                    module.train(True)
        return self

    @property
    def dtype(self):
        """The LLM weight dtype."""
        return self.model.dtype

    def embed(self, ids):
        """The LLM input embeddings of token ids (model dtype).

        Arguments
        ---------
        ids : torch.Tensor
            Long tensor of token ids.

        Returns
        -------
        torch.Tensor
            The embeddings, shape ``ids.shape + (D,)``.
        """
        layer = self.model.get_input_embeddings()
        return layer(ids.to(layer.weight.device))

    def embedding_table(self):
        """An :class:`EmbeddingTable` sharing this LLM's embedding weight (no copy).

        Returns
        -------
        EmbeddingTable
            The table (build it after moving the LLM to its device).
        """
        weight = self.model.get_input_embeddings().weight
        table = EmbeddingTable(weight, self.pad_id, tokenizer=self.tokenizer)
        table.pad_token = self.pad_token
        return table

    def _ids(self, text):
        """Token ids of a text segment as it reads in context (after a newline).

        Sentencepiece-style tokenizers (EuroLLM, Llama-2) put a "dummy prefix" space on the
        first word of every tokenized string, which the segment does not have inside the
        rendered chat: the segment is tokenized after a newline whose ids are then removed.
        Byte-level BPE tokenizers (Llama-3) may merge that newline with the segment; they
        add no dummy prefix, so the segment is then tokenized on its own.
        """
        if not text:
            return []
        marked = self.tokenizer(_MARKER + text, add_special_tokens=False)["input_ids"]
        if marked[: len(self._marker_ids)] == self._marker_ids:
            return list(marked[len(self._marker_ids) :])
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, prompt, speech=True):
        """Token ids of the chat-rendered prompt before and after the speech placeholder.

        The prompt is the user message; it is rendered with the chat template (optional system
        prompt, ``add_generation_prompt=True``), so the ids after the placeholder end with the
        assistant header.

        Arguments
        ---------
        prompt : str
            A user message with exactly one placeholder (``speech=True``), or a text-only
            message without it (``speech=False``: the "before" ids are then the whole
            rendered user turn and assistant header, the "after" ids are empty).
        speech : bool
            Whether the prompt receives speech vectors.

        Returns
        -------
        tuple
            (ids before, ids after) as lists of int.
        """
        cached = self._prompt_cache.get((prompt, speech))
        if cached is not None:
            return cached
        if not isinstance(prompt, str):
            raise TypeError(f"A prompt must be a str, got {type(prompt).__name__}: {prompt!r}")
        count = prompt.count(self.placeholder)
        if not speech:
            if count:
                raise ValueError(
                    f"Text-only prompt {prompt!r} still holds the speech placeholder "
                    f"{self.placeholder!r}: fill it first (prompts.fill_text)."
                )
            prompt = prompt + self.placeholder
        elif count != 1:
            raise ValueError(
                f"Prompt {prompt!r} must contain the speech placeholder {self.placeholder!r} "
                f"exactly once (found {count})."
            )
        messages = [{"role": "user", "content": prompt}]
        if self.system_prompt is not None:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        text = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        if text.count(self.placeholder) != 1:
            raise ValueError(
                f"The chat template of {self.source} does not keep the placeholder "
                f"{self.placeholder!r} of prompt {prompt!r} exactly once; rendered: {text!r}"
            )
        before, after = text.split(self.placeholder)
        if not speech:
            before, after = before + after, ""
        before_ids, after_ids = self._ids(before), self._ids(after)
        if self._bos_id is not None and (not before_ids or before_ids[0] != self._bos_id):
            before_ids = [self._bos_id] + before_ids
        key = (prompt if speech else prompt[: -len(self.placeholder)], speech)
        self._prompt_cache[key] = (before_ids, after_ids)
        return before_ids, after_ids

    @property
    def max_positions(self):
        """The LLM's ``max_position_embeddings`` (None when its config has none)."""
        value = getattr(self.model.config, "max_position_embeddings", None)
        return int(value) if value else None

    def check_positions(self, prompts, speech_counts=None, max_new_tokens=0, assistant_prefix=""):
        """Refuse inputs that do not fit in the LLM's positions: chat-rendered prompt + speech
        vectors + ``assistant_prefix`` + ``max_new_tokens`` must be at most
        ``max_positions`` (beyond, the model runs on positions it was never trained on).

        Arguments
        ---------
        prompts : list of str
            User prompts (with the speech placeholder when ``speech_counts`` is given).
        speech_counts : list of int, optional
            Speech vectors spliced into each prompt (None: text-only prompts).
        max_new_tokens : int
            Tokens the decoding may add.
        assistant_prefix : str
            Text forced at the start of the answer.

        Raises
        ------
        InputTooLong
            Listing every input over the limit (index, speech vectors, prompt tokens).
        """
        limit = self.max_positions
        if limit is None:
            return
        speech = speech_counts is not None
        counts = list(speech_counts) if speech else [0] * len(prompts)
        extra = len(self._ids(assistant_prefix)) + int(max_new_tokens)
        rows = []
        for index, (prompt, count) in enumerate(zip(prompts, counts)):
            before, after = self.prompt_ids(prompt, speech=speech)
            if len(before) + len(after) + int(count) + extra > limit:
                rows.append((index, int(count), len(before) + len(after)))
        if rows:
            index, count, tokens = rows[0]
            raise InputTooLong(
                f"{len(rows)} input(s) do not fit in the {limit} positions of {self.source} "
                f"(max_position_embeddings), e.g. input {index}: {count} speech vectors + "
                f"{tokens} prompt tokens + {extra} new tokens = {count + tokens + extra}.",
                rows,
                limit,
                extra,
            )

    def build_inputs(
        self,
        speech,
        speech_lens,
        prompts,
        answers=None,
        assistant_prefix="",
        padding_side="right",
    ):
        """Splices the speech vectors into the chat prompts (and answers) as LLM inputs.

        Each sequence is: prompt ids before the placeholder, the ``round(lens * T)`` valid
        speech vectors (cast to the LLM dtype, differentiable), prompt ids after the
        placeholder (generation prompt included), the ``assistant_prefix`` ids, and for
        training the answer ids followed by the end-of-turn token. ``labels`` (aligned with
        the inputs, as in Hugging Face) are -100 except on the answer and end-of-turn
        positions. Padding uses the pad-token embedding and ``attention_mask`` 0.

        Arguments
        ---------
        speech : torch.Tensor or None
            [B, T, D] projector outputs; None for text-only prompts (no placeholder).
        speech_lens : torch.Tensor or None
            [B] relative lengths.
        prompts : list of str or str
            User messages, each with one placeholder (a str is used for every utterance).
        answers : list of str, optional
            Target answers (training); None for generation.
        assistant_prefix : str
            Text forced at the start of the assistant turn (tokenized on its own).
        padding_side : str
            "right" (training) or "left" (generation).

        Returns
        -------
        dict
            ``inputs_embeds`` [B, L, D], ``attention_mask`` [B, L], ``labels`` [B, L] (None
            without answers) and ``position_ids`` [B, L].
        """
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        if speech is None:  # text-only prompts (cascades, judges)
            if isinstance(prompts, str):
                prompts = [prompts]
            batch, dim = len(prompts), self.embed_dim
            counts = [0] * batch
            device = self.model.get_input_embeddings().weight.device
        else:
            batch, length, dim = speech.shape
            if dim != self.embed_dim:
                raise ValueError(
                    f"Speech vectors have dimension {dim} but {self.source} embeddings "
                    f"{self.embed_dim}."
                )
            counts = speech_lengths(torch.as_tensor(speech_lens).detach().cpu(), length).tolist()
            device = speech.device
        prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
        if len(prompts) != batch:
            raise ValueError(f"Got {len(prompts)} prompts for a batch of {batch}.")
        if answers is not None:
            answers = list(answers)
            if len(answers) != batch:
                raise ValueError(f"Got {len(answers)} answers for a batch of {batch}.")
        prefix_ids = self._ids(assistant_prefix)
        dtype = self.model.dtype
        pieces, label_rows = [], []
        for index in range(batch):
            before, after = self.prompt_ids(prompts[index], speech=speech is not None)
            tail = after + prefix_ids
            answer = []
            if answers is not None:
                answer = self._ids(answers[index]) + [self.eot_id]
            ids_before = torch.tensor(before, dtype=torch.long, device=device)
            ids_after = torch.tensor(tail + answer, dtype=torch.long, device=device)
            parts = [self.embed(ids_before).to(device), self.embed(ids_after).to(device)]
            if speech is not None:
                parts.insert(1, speech[index, : counts[index]].to(dtype))
            embeds = torch.cat(parts)
            pieces.append(embeds)
            labels = torch.full((len(embeds),), IGNORE_INDEX, dtype=torch.long, device=device)
            if answer:
                labels[len(embeds) - len(answer) :] = torch.tensor(answer, device=device)
            label_rows.append(labels)
        total = max(len(piece) for piece in pieces)
        pad_embed = self.embed(torch.tensor([self.pad_id], device=device)).to(device)[0]
        inputs_embeds = pad_embed.expand(batch, total, dim).clone()
        attention_mask = torch.zeros(batch, total, dtype=torch.long, device=device)
        labels = torch.full((batch, total), IGNORE_INDEX, dtype=torch.long, device=device)
        for index, piece in enumerate(pieces):
            size = len(piece)
            span = slice(0, size) if padding_side == "right" else slice(total - size, total)
            inputs_embeds[index, span] = piece
            attention_mask[index, span] = 1
            labels[index, span] = label_rows[index]
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return {
            "inputs_embeds": inputs_embeds,
            "attention_mask": attention_mask,
            "labels": labels if answers is not None else None,
            "position_ids": position_ids,
        }

    def forward(
        self, speech, speech_lens, prompts, answers, assistant_prefix="", return_logits=False
    ):
        """Cross-entropy of the answers (+ end-of-turn) given the speech-spliced prompts.

        Only the logits from the first answer position on are computed (``logits_to_keep``),
        and the loss is the float32 mean over all answer tokens of the batch.

        Arguments
        ---------
        speech : torch.Tensor
            [B, T, D] projector outputs.
        speech_lens : torch.Tensor
            [B] relative lengths.
        prompts : list of str or str
            User messages with one placeholder.
        answers : list of str
            Target answers.
        assistant_prefix : str
            Forced start of the assistant turn.
        return_logits : bool
            Also return the full [B, L, V] logits (and compute them all).

        Returns
        -------
        dict
            ``loss`` (scalar), ``num_tokens`` (answer tokens scored), and ``logits`` and
            ``labels`` if ``return_logits``.
        """
        if answers is None:
            raise ValueError("FrozenLLM.forward needs answers (use generate() for inference).")
        inputs = self.build_inputs(
            speech, speech_lens, prompts, answers, assistant_prefix=assistant_prefix
        )
        labels = inputs["labels"]
        shifted = labels[:, 1:]
        valid = shifted != IGNORE_INDEX
        start = 0
        kwargs = {}
        if not return_logits and self._keeps_logits:
            start = int(valid.nonzero()[:, 1].min())
            kwargs["logits_to_keep"] = labels.shape[1] - start
        prefix = self._shared_prefix(prompts, speech is not None, labels.shape[0])
        skip = min(len(prefix), start) if self._keeps_logits and not return_logits else 0
        if skip:  # reuse_prompt_prefix: the cached keys/values of the shared prompt prefix
            output = self.model(
                inputs_embeds=inputs["inputs_embeds"][:, skip:],
                attention_mask=inputs["attention_mask"],
                position_ids=inputs["position_ids"][:, skip:],
                past_key_values=self._prefix_cache(prefix[:skip], labels.shape[0]),
                use_cache=False,
                **kwargs,
            )
        else:
            # Right padding: causal attention alone is exact at every non-padding position.
            mask = None if self.causal_mask_only else inputs["attention_mask"]
            output = self.model(
                inputs_embeds=inputs["inputs_embeds"],
                attention_mask=mask,
                position_ids=inputs["position_ids"],
                use_cache=False,
                **kwargs,
            )
        logits = output.logits
        if logits.shape[1] != labels.shape[1] - start:
            raise RuntimeError(
                f"{self.source} returned {logits.shape[1]} logit positions, expected "
                f"{labels.shape[1] - start}."
            )
        mask = valid[:, start:]
        scored = logits[:, :-1][mask].float()
        loss = torch.nn.functional.cross_entropy(scored, shifted[:, start:][mask])
        result = {"loss": loss, "num_tokens": int(mask.sum())}
        if return_logits:
            result["logits"] = logits
            result["labels"] = labels
        return result

    def _shared_prefix(self, prompts, speech, batch):
        """The prompt ids every row starts with, when ``reuse_prompt_prefix`` applies (none
        otherwise: lever off, or trainable LLM weights such as LoRA adapters)."""
        if not self.reuse_prompt_prefix:
            return ()
        if any(p.requires_grad for p in self.model.parameters()):
            return ()
        prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
        rows = [self.prompt_ids(p, speech=speech)[0] for p in prompts]
        shared = []
        for tokens in zip(*rows):
            if any(t != tokens[0] for t in tokens):
                break
            shared.append(tokens[0])
        return tuple(shared)

    @torch.no_grad()
    def _prefix_cache(self, prefix, batch):
        """A cache holding, for each of the ``batch`` rows, the keys and values of the prompt
        ids ``prefix``: computed once per distinct prefix and kept (at most 16)."""
        from transformers import DynamicCache

        device = self.model.get_input_embeddings().weight.device
        key = (prefix, device, self.model.dtype)
        layers = self._prefix_kv.get(key)
        if layers is None:
            embeds = self.embed(torch.tensor([prefix], dtype=torch.long, device=device))
            out = self.model(inputs_embeds=embeds, use_cache=True, **self._one_logit())
            layers = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
            if len(self._prefix_kv) >= 16:
                self._prefix_kv.pop(next(iter(self._prefix_kv)))
            self._prefix_kv[key] = layers
        return DynamicCache(
            ddp_cache_data=[
                (k.expand(batch, -1, -1, -1), v.expand(batch, -1, -1, -1)) for k, v in layers
            ]
        )

    def _one_logit(self):
        return {"logits_to_keep": 1} if self._keeps_logits else {}
