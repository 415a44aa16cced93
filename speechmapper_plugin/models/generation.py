"""Greedy decoding of the frozen LLM from spliced prompts (paper Sec. 3: greedy search, 150
new tokens), batched with left padding, an attention mask and the KV cache.

``GreedyGeneration`` is the decoding half of ``frozen_llm.FrozenLLM``: it relies on the
LLM's ``build_inputs`` (prompt splicing), ``model``, ``tokenizer``, ``eos_ids`` and ``pad_id``.

Decoding engine (``FrozenLLM(static_cache=..., compile_decoding=...)``): Hugging Face
``generate`` with its dynamic KV cache (default), or with its static cache, whose fixed
shapes let ``torch.compile`` capture each decoding step as a CUDA graph
(``compile_decoding``: the prefill stays eager, every later step replays the graph). Sub-batches
(``batch_size``) take the rows sorted by prompt length, longest first: rows of similar lengths
share a batch (little padding), and the first batch sizes the static cache that the shorter
ones reuse; with the static cache the last sub-batch is filled up with copies of its last row
(their outputs are dropped), so every call has the same batch size and no graph is rebuilt.
Greedy outputs do not depend on any of this: each row attends only to its own positions.

Authors
-------
speechmapper developers, 2026
"""

import inspect

import torch

from speechmapper_plugin.models.embeddings import speech_lengths
from speechmapper_plugin.utils.progress import progress_bar


class GreedyGeneration:
    """Batched greedy decoding for a ``FrozenLLM`` (a mixin: see the module docstring).

    Example
    -------
    >>> import tempfile
    >>> from speechmapper_plugin.models.frozen_llm import FrozenLLM
    >>> from speechmapper_plugin.tiny.llm import build_tiny_llm
    >>> llm = FrozenLLM(build_tiny_llm(tempfile.mkdtemp(), ["the cat sat"]), dtype="float32")
    >>> ids = llm.generate_ids(torch.randn(2, 4, llm.embed_dim), torch.ones(2), "<speech>", 3)
    >>> len(ids), all(len(row) <= 3 for row in ids)
    (2, True)
    """

    def generate(
        self,
        speech,
        speech_lens,
        prompts,
        max_new_tokens=150,
        assistant_prefix="",
        batch_size=None,
        guard=None,
    ):
        """Batched greedy decoding (left padding, attention mask, KV cache) to text.

        Decoding stops on the model's eos ids (generation config, tokenizer eos and the
        end-of-turn token). The model's sampling defaults are ignored: it is pure greedy search.

        Arguments
        ---------
        speech : torch.Tensor
            [B, T, D] projector outputs.
        speech_lens : torch.Tensor
            [B] relative lengths.
        prompts : list of str or str
            User messages with one placeholder.
        max_new_tokens : int
            Maximum number of generated tokens (paper: 150).
        assistant_prefix : str
            Text forced at the start of the answer (not part of the returned text).
        batch_size : int, optional
            Decode in sub-batches of this size (default: the whole batch).
        guard : evaluation.decoding.RepetitionGuard, optional
            Stops (and trims) generations stuck on a repeated n-gram.

        Returns
        -------
        list of str
            The generated answers (special tokens skipped, stripped).
        """
        return self.decode_ids(
            self.generate_ids(
                speech,
                speech_lens,
                prompts,
                max_new_tokens=max_new_tokens,
                assistant_prefix=assistant_prefix,
                batch_size=batch_size,
                guard=guard,
            )
        )

    def decode_ids(self, sequences):
        """Texts of generated id sequences (special tokens skipped, stripped).

        Arguments
        ---------
        sequences : list of list of int
            Output of :meth:`generate_ids`.

        Returns
        -------
        list of str
            The texts.
        """
        return [self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in sequences]

    def generate_text(self, prompts, max_new_tokens=150, assistant_prefix="", batch_size=None):
        """Batched greedy answers to text-only user prompts (cascades, LLM judges).

        Arguments
        ---------
        prompts : list of str
            User messages without the speech placeholder.
        max_new_tokens : int
            Maximum number of generated tokens.
        assistant_prefix : str
            Text forced at the start of the answer.
        batch_size : int, optional
            Decode in sub-batches of this size.

        Returns
        -------
        list of str
            The generated answers.
        """
        return self.decode_ids(
            self.generate_ids(
                None,
                None,
                prompts,
                max_new_tokens=max_new_tokens,
                assistant_prefix=assistant_prefix,
                batch_size=batch_size,
            )
        )

    @torch.no_grad()
    def generate_ids(
        self,
        speech,
        speech_lens,
        prompts,
        max_new_tokens=150,
        assistant_prefix="",
        batch_size=None,
        guard=None,
    ):
        """Like :meth:`generate`, but returns the generated token ids (eos excluded).

        Arguments
        ---------
        speech : torch.Tensor or None
            [B, T, D] projector outputs (None: text-only prompts).
        speech_lens : torch.Tensor or None
            [B] relative lengths.
        prompts : list of str or str
            User messages with one placeholder.
        max_new_tokens : int
            Maximum number of generated tokens.
        assistant_prefix : str
            Text forced at the start of the answer.
        batch_size : int, optional
            Decode in sub-batches of this size.
        guard : evaluation.decoding.RepetitionGuard, optional
            Stops a sequence that ends with a repeated n-gram and trims it to one copy.

        Returns
        -------
        list of list of int
            The generated ids of each utterance, cut before the first eos id.
        """
        from transformers import GenerationConfig, StoppingCriteriaList

        if speech is None:
            prompts = [prompts] if isinstance(prompts, str) else list(prompts)
            batch = len(prompts)
        else:
            batch = speech.shape[0]
            prompts = [prompts] * batch if isinstance(prompts, str) else list(prompts)
            speech_lens = torch.as_tensor(speech_lens)
        if len(prompts) != batch:
            raise ValueError(f"Got {len(prompts)} prompts for a batch of {batch}.")
        step = batch if not batch_size else int(batch_size)
        config = GenerationConfig(
            max_new_tokens=int(max_new_tokens),
            do_sample=False,
            num_beams=1,
            eos_token_id=list(self.eos_ids),
            pad_token_id=self.pad_id,
            bos_token_id=self.tokenizer.bos_token_id,
            **self._engine_settings(),
        )
        kwargs = {"generation_config": config}
        if "use_model_defaults" in inspect.signature(self.model.generate).parameters:
            kwargs["use_model_defaults"] = False
        if guard is not None:
            kwargs["stopping_criteria"] = StoppingCriteriaList([guard])
        static = bool(config.cache_implementation)
        order = list(range(batch))
        if step < batch:
            order = self._longest_first(speech, speech_lens, prompts, assistant_prefix)
        results = [None] * batch
        starts = range(0, batch, step)  # sub-batches: a progress bar on a terminal
        for first in progress_bar(starts, desc="generate", unit="batch", enable=len(starts) > 1):
            rows = order[first : first + step]
            filled = rows + rows[-1:] * (step - len(rows) if static and batch_size else 0)
            take = slice(None) if filled == list(range(batch)) else filled
            inputs = self.build_inputs(
                None if speech is None else speech[take],
                None if speech is None else speech_lens[take],
                [prompts[i] for i in filled],
                assistant_prefix=assistant_prefix,
                padding_side="left",
            )
            output = self.model.generate(
                inputs_embeds=inputs["inputs_embeds"],
                attention_mask=inputs["attention_mask"],
                **kwargs,
            )
            for index, row in zip(rows, output.tolist()):
                cut = next((i for i, tok in enumerate(row) if tok in self.eos_ids), len(row))
                row = row[:cut]
                if guard is not None:  # a guarded row was padded after its stop
                    while row and row[-1] == self.pad_id:
                        row.pop()
                    row = guard.trim(row)
                results[index] = row
        return results

    def _engine_settings(self):
        """``GenerationConfig`` fields of the decoding engine (see the module docstring)."""
        compile_decoding = getattr(self, "compile_decoding", False)
        if not (compile_decoding or getattr(self, "static_cache", False)):
            return {}
        if not compile_decoding:  # HF compiles static-cache decoding on CUDA unless told not to
            return {"cache_implementation": "static", "disable_compile": True}
        from transformers.generation.configuration_utils import CompileConfig

        return {
            "cache_implementation": "static",
            "compile_config": getattr(self, "decoding_compile_config", None) or CompileConfig(),
        }

    def _longest_first(self, speech, speech_lens, prompts, assistant_prefix):
        """Row indices by decreasing spliced prompt length (ties keep their order)."""
        extra = len(self._ids(assistant_prefix))
        if speech is None:
            counts = [0] * len(prompts)
        else:
            counts = speech_lengths(speech_lens.detach().cpu(), speech.shape[1]).tolist()
        lengths = [
            sum(len(part) for part in self.prompt_ids(prompt, speech=speech is not None))
            + count
            + extra
            for prompt, count in zip(prompts, counts)
        ]
        return sorted(range(len(prompts)), key=lambda i: -lengths[i])
