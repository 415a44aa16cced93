"""``EvalBrain``: decodes a test set with one system (SpeechMapper, nearest-embedding, the
transcript topline, an ASR model, or the ASR + LLM cascade) and writes its result file.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os

import speechbrain as sb
import torch

from speechmapper_plugin.evaluation.decoding import is_stuck
from speechmapper_plugin.evaluation.results import make_result, write_result
from speechmapper_plugin.evaluation.scoring import score_outputs

logger = logging.getLogger(__name__)


class EvalBrain(sb.Brain):
    """Decodes a test set with one system and scores it for one task (paper Sec. 3).

    Systems (hparam ``system``):

    - ``speechmapper``: SFM features -> projector (stage-1 or stage-2 checkpoint) -> frozen
      LLM, greedy, with the task prompt (zero-shot suffix by default);
    - ``nearest``: the stage-1 nearest-embedding diagnostic (ASR only, no LLM forward);
    - ``transcript``: the topline, reference transcription + LLM through the text prefix;
    - ``asr``: an HF ASR model alone (ASR baseline rows of Table 8);
    - ``asr+llm``: the cascade, HF ASR transcripts + LLM.

    Expected ``modules`` by system: ``projector`` and ``llm`` (``speechmapper``),
    ``projector`` and ``embeddings`` (``nearest``), ``llm`` (``transcript``),
    ``transcriber`` (``asr``), ``transcriber`` and ``llm`` (``asr+llm``). Expected hparams:
    ``system``, ``system_name`` (row label), ``task``, ``dataset``, ``prompt_kwargs``
    (``prompts.task_prompt`` arguments), ``asr_prompt`` (ASR prompt, e.g. Table 11; None for
    the IT template), ``speech_prefix``, ``text_prefix``, ``assistant_prefix``,
    ``max_new_tokens``, ``repetition_guard`` (``decoding.RepetitionGuard`` or None),
    ``comet`` (``comet.CometScorer`` or None), ``judges`` (list), ``output_folder``,
    ``seed``; optional ``setting``, ``llm_source``. Set ``test_name`` (the split) before
    ``evaluate``; ``last_result`` then holds the result dict written under
    ``<output_folder>/results``.
    """

    SYSTEMS = ("speechmapper", "nearest", "transcript", "asr", "asr+llm")
    test_name = "test"

    def on_evaluate_start(self, max_key=None, min_key=None):
        """Check the system and reset the guard (no checkpoint to load)."""
        system = self.hparams.system
        if system not in self.SYSTEMS:
            raise ValueError(f"system={system!r} is not one of {self.SYSTEMS}.")
        if system == "nearest" and self.hparams.task != "asr":
            raise ValueError("system 'nearest' (nearest-embedding decoding) only does task 'asr'.")
        guard = self.hparams.repetition_guard
        if guard is not None:
            guard.reset()

    def on_stage_start(self, stage, epoch=None):
        """Reset the decoded outputs."""
        self.outputs = []

    def _prompt(self, row, text=None):
        """The user prompt of one item (speech placeholder, or filled with ``text``)."""
        from speechmapper_plugin.data.prompts import fill_text, task_prompt

        hp = self.hparams
        prefix = hp.text_prefix if text is not None else hp.speech_prefix
        if hp.task == "asr" and hp.asr_prompt:
            prompt = hp.asr_prompt
        else:
            prompt = task_prompt(
                hp.task,
                target_lang=row["tgt_lang"],
                question=row["question"] or None,
                prefix=prefix,
                **hp.prompt_kwargs,
            )
        return fill_text(prompt, text) if text is not None else prompt

    def compute_forward(self, batch, stage):
        """Decode the batch with the configured system."""
        hp = self.hparams
        rows = [
            {key: getattr(batch, key)[i] for key in ("tgt_lang", "question")}
            for i in range(len(batch.id))
        ]
        generate = {
            "max_new_tokens": hp.max_new_tokens,
            "assistant_prefix": hp.assistant_prefix,
            "guard": hp.repetition_guard,
        }
        ids = None
        if hp.system in ("speechmapper", "nearest"):
            feats, feat_lens = batch.feats
            pred, lens = self.modules.projector(feats.to(self.device), feat_lens.to(self.device))
            if hp.system == "nearest":
                return self.modules.embeddings.decode(
                    pred.float(), lens, metric=getattr(hp, "nearest_metric", "cosine")
                ), None
            prompts = [self._prompt(row) for row in rows]
            ids = self.modules.llm.generate_ids(pred, lens, prompts, **generate)
        else:
            if hp.system == "transcript":
                texts = list(batch.transcript)
            else:
                texts = self.modules.transcriber(list(batch.wav))
                if hp.system == "asr":
                    return texts, None
            prompts = [self._prompt(row, text) for row, text in zip(rows, texts)]
            ids = self.modules.llm.generate_ids(None, None, prompts, **generate)
        return self.modules.llm.decode_ids(ids), ids

    def evaluate_batch(self, batch, stage):
        """Decode only (no loss): collect the outputs."""

        with torch.no_grad():
            hyps, ids = self.compute_forward(batch, stage)
        for i, hyp in enumerate(hyps):
            stuck = ids is not None and is_stuck(ids[i], self.hparams.max_new_tokens)
            self.outputs.append(
                {
                    "id": batch.id[i],
                    "hypothesis": hyp,
                    "reference": batch.tgt[i],
                    "source": batch.transcript[i],
                    "tgt_lang": batch.tgt_lang[i],
                    "question": batch.question[i],
                    "context": batch.context[i],
                    "stuck": stuck,
                }
            )
        return torch.tensor(0.0)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Score the outputs, log them and write the result file."""

        hp = self.hparams
        guard = hp.repetition_guard
        hp_lora = getattr(hp, "lora_adapter", None)
        metrics, signatures = score_outputs(
            hp.task,
            self.outputs,
            comet=hp.comet,
            judges=hp.judges,
            guarded=guard.stopped if guard is not None else 0,
            judge_protocol=getattr(hp, "judge_protocol", "bergen"),
            wer_normalizer=getattr(hp, "wer_normalizer", "mms"),
        )
        langs = {o["tgt_lang"] for o in self.outputs}
        result = make_result(
            hp.system_name,
            hp.dataset,
            self.test_name,
            hp.task,
            metrics,
            self.outputs,
            seed=hp.seed,
            setting=getattr(hp, "setting", None),
            llm=getattr(hp, "llm_source", None),
            target_lang=langs.pop() if len(langs) == 1 else None,
            signatures=signatures,
            decoding={
                "system": hp.system,
                "max_new_tokens": hp.max_new_tokens,
                "assistant_prefix": hp.assistant_prefix,
                "example_prompt": self._example_prompt(),
                "repetition_guard": guard is not None,
                "lora_adapter": None if hp_lora is None else str(hp_lora),
            },
        )
        if sb.utils.distributed.if_main_process():
            path = write_result(os.path.join(hp.output_folder, "results"), result)
            logger.info("Result written to %s", path)
        hp.train_logger.log_stats(
            stats_meta={"system": hp.system_name, "split": self.test_name, "task": hp.task},
            test_stats={k: v for k, v in metrics.items() if isinstance(v, (int, float))},
        )
        self.last_result = result

    def _example_prompt(self):
        if self.hparams.system in ("nearest", "asr") or not self.outputs:
            return None
        first = self.outputs[0]
        text = "<transcript>" if self.hparams.system != "speechmapper" else None
        return self._prompt(first, text)
