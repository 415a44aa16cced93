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
from speechmapper_plugin.evaluation.sharding import ShardedEvaluation, all_sum
from speechmapper_plugin.models.embeddings import speech_lengths

logger = logging.getLogger(__name__)


class EvalBrain(ShardedEvaluation, sb.Brain):
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

    Under ``torchrun`` each process decodes its share of the batches (``ShardedEvaluation``);
    the outputs are gathered once, scored by the main process, and the result file is the
    one a single process writes.
    """

    SYSTEMS = ("speechmapper", "nearest", "transcript", "asr", "asr+llm")
    test_name = "test"

    def __init__(self, modules=None, hparams=None, run_opts=None, **kwargs):
        super().__init__(modules=modules, hparams=hparams, run_opts=run_opts, **kwargs)
        given = getattr(run_opts, "overridden_args", None)
        given = set(run_opts or {}) if given is None else given
        if "eval_precision" not in given and self.eval_precision != self.precision:
            # --precision=bf16 applies to evaluation as to training (unless --eval_precision)
            from speechbrain.utils.autocast import AMPConfig, TorchAutocast

            self.eval_precision = self.precision
            self.evaluation_ctx = TorchAutocast(
                device_type=self.device_type, dtype=AMPConfig.from_name(self.precision).dtype
            )

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
            self._check_positions(
                batch, prompts, speech_lengths(lens.cpu(), pred.shape[1]).tolist()
            )
            ids = self.modules.llm.generate_ids(pred, lens, prompts, **generate)
        else:
            if hp.system == "transcript":
                texts = list(batch.transcript)
            else:  # segments of longer recordings are read between their start and stop
                segments = list(zip(batch.wav, batch.start, batch.stop))
                texts = self.modules.transcriber(segments)
                if hp.system == "asr":
                    return texts, None
            prompts = [self._prompt(row, text) for row, text in zip(rows, texts)]
            self._check_positions(batch, prompts, None)
            ids = self.modules.llm.generate_ids(None, None, prompts, **generate)
        return self.modules.llm.decode_ids(ids), ids

    def _check_positions(self, batch, prompts, counts):
        """Stop with the utterances whose prompt + speech + new tokens exceed the LLM's
        positions (they would be decoded on positions it was never trained on)."""
        from speechmapper_plugin.models.frozen_llm import InputTooLong

        hp = self.hparams
        try:
            self.modules.llm.check_positions(
                prompts, counts, hp.max_new_tokens, hp.assistant_prefix
            )
        except InputTooLong as err:
            ids = [batch.id[index] for index, _, _ in err.rows]
            raise ValueError(
                f"Test set {self.test_name}: {len(ids)} utterance(s) do not fit in the LLM "
                f"({err}), e.g. {ids[:5]}. Lower --max_duration (the preparation then skips "
                "and counts them) or --max_new_tokens."
            ) from None

    def evaluate_batch(self, batch, stage):
        """Decode only (no loss), in the evaluation precision: collect the outputs."""

        with torch.no_grad(), self.evaluation_ctx:
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
        """Gather the outputs of every process, score them, log them and write the result
        file (main process; the others receive the result)."""

        hp = self.hparams
        guard = hp.repetition_guard
        self.outputs = self.gather_outputs(self.outputs)
        guarded = 0 if guard is None else int(all_sum([guard.stopped])[0])
        result = None
        if sb.utils.distributed.if_main_process():
            result = self._result(guarded)
            path = write_result(os.path.join(hp.output_folder, "results"), result)
            logger.info("Result written to %s", path)
        result = sb.utils.distributed.ddp_broadcast(result, src=0)
        hp.train_logger.log_stats(
            stats_meta={"system": hp.system_name, "split": self.test_name, "task": hp.task},
            test_stats={k: v for k, v in result["metrics"].items() if isinstance(v, (int, float))},
        )
        self.last_result = result

    def _result(self, guarded):
        """The result dict of the (gathered) outputs."""
        hp = self.hparams
        guard = hp.repetition_guard
        hp_lora = getattr(hp, "lora_adapter", None)
        metrics, signatures = score_outputs(
            hp.task,
            self.outputs,
            comet=hp.comet,
            judges=hp.judges,
            guarded=guarded,
            judge_protocol=getattr(hp, "judge_protocol", "bergen"),
            wer_normalizer=getattr(hp, "wer_normalizer", "mms"),
        )
        langs = {o["tgt_lang"] for o in self.outputs}
        return make_result(
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
                "precision": self.eval_precision,
                "lora_adapter": None if hp_lora is None else str(hp_lora),
            },
        )

    def _example_prompt(self):
        if self.hparams.system in ("nearest", "asr") or not self.outputs:
            return None
        first = self.outputs[0]
        text = "<transcript>" if self.hparams.system != "speechmapper" else None
        return self._prompt(first, text)
