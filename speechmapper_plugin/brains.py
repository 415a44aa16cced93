"""SpeechBrain ``Brain`` classes of the two SpeechMapper stages.

- ``Stage1Brain``: the projector against the frozen LLM's embedding table only (eq. 1-2);
  validation and test decode with the nearest-embedding diagnostic (no LLM forward).
- ``Stage2Brain``: the projector spliced into the frozen LLM's prompt, CE or CE+MSE (eq. 3),
  test sets decoded by batched greedy generation with the zero-shot ASR prompt.

Recipes instantiate them from their hparams; every dataset recipe uses these classes.

Authors
-------
speechmapper developers, 2026
"""

import logging
import os

import speechbrain as sb
import torch
from speechbrain.utils.distributed import main_process_only

from .curves import CurveLog
from .decoding import is_stuck
from .evaluation import score_outputs
from .files import atomic_write_text
from .results import make_result, write_result

__all__ = ["Stage1Brain", "Stage2Brain", "MultitaskBrain", "TextLoRABrain", "EvalBrain"]

logger = logging.getLogger(__name__)


def _as_str(value):
    return None if value is None else str(value)


class _SpeechMapperBrain(sb.Brain):
    """What both stages share: projector-only optimizer, running loss components, the
    learning-curve log, decoded-output files and result JSONs."""

    #: Name of the split being evaluated; recipes set it before ``evaluate`` (files are
    #: named after it).
    test_name = "test"

    @property
    def llm(self):
        """The ``llm.FrozenLLM`` itself. Under DDP, SpeechBrain wraps an LLM that carries
        trainable LoRA adapters (so that their gradients are averaged across processes):
        calls go through ``self.modules.llm``, attribute access through this."""
        llm = self.modules.llm
        return llm.module if isinstance(llm, torch.nn.parallel.DistributedDataParallel) else llm

    def init_optimizers(self):
        """Optimize the projector only (the LLM and its embeddings are frozen)."""
        params = [p for p in self.modules.projector.parameters() if p.requires_grad]
        self.optimizer = self.opt_class(params)
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def on_fit_start(self):
        """Set up the curve log and the learning rate of the (possibly resumed) schedule."""
        super().on_fit_start()
        self.curve = CurveLog(os.path.join(self.hparams.output_folder, "curve.jsonl"))
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = scheduler.lr_at(scheduler.n_steps)

    def on_stage_start(self, stage, epoch=None):
        """Reset the running sums of loss components and the decoded outputs."""
        self.sums, self.count = {}, 0
        self.interval_sums, self.interval_count = {}, 0
        self.outputs = []
        loss = getattr(self.hparams, "loss", None)
        if loss is not None:  # truncation counts are reported per stage
            loss.truncated = loss.seen = 0

    def _accumulate(self, parts, batch_size):
        for key, value in parts.items():
            if torch.is_tensor(value) and value.dim() == 0:
                v = float(value.detach())
                self.sums[key] = self.sums.get(key, 0.0) + v * batch_size
                self.interval_sums[key] = self.interval_sums.get(key, 0.0) + v * batch_size
        self.count += batch_size
        self.interval_count += batch_size

    def _means(self, sums, count):
        return {k: v / max(count, 1) for k, v in sums.items()}

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        """Advance the LR schedule and log the training curve every ``log_interval`` steps."""
        if not should_step:
            return
        scheduler = getattr(self.hparams, "lr_scheduler", None)
        if scheduler is not None:
            scheduler(self.optimizer)
        interval = getattr(self.hparams, "log_interval", 50)
        if self.optimizer_step % interval == 0 and self.interval_count:
            means = self._means(self.interval_sums, self.interval_count)
            means["lr"] = self.optimizer.param_groups[0]["lr"]
            self._log_curve("train", **means)
            self.interval_sums, self.interval_count = {}, 0

    def _add_outputs(self, ids, hyps, refs, stuck=None):
        stuck = stuck or [False] * len(hyps)
        self.outputs.extend(
            {"id": i, "hypothesis": h, "reference": r, "stuck": k}
            for i, h, r, k in zip(ids, hyps, refs, stuck)
        )

    def _score_outputs(self):
        metrics, self.signatures = score_outputs("asr", self.outputs)
        return metrics

    @main_process_only
    def _write_outputs(self, kind, system, metrics, decoding, setting=None):
        """Decoded outputs (TSV) and the result file (``results.make_result`` schema) of the
        split ``self.test_name``, written as ``results/<split>.json``."""
        folder = self.hparams.output_folder
        lines = ["ID\thypothesis\treference"]
        lines += [f"{o['id']}\t{o['hypothesis']}\t{o['reference']}" for o in self.outputs]
        atomic_write_text(
            os.path.join(folder, "decode", f"{self.test_name}.{kind}.tsv"), "\n".join(lines) + "\n"
        )
        result = make_result(
            getattr(self.hparams, "system_name", None) or system,
            getattr(self.hparams, "dataset", "LibriSpeech"),
            self.test_name,
            "asr",
            metrics,
            self.outputs,
            seed=getattr(self.hparams, "seed", None),
            setting=setting,
            llm=_as_str(getattr(self.hparams, "llm_source", None)),
            target_lang="en",
            signatures=self.signatures,
            decoding=decoding,
        )
        write_result(os.path.join(folder, "results", f"{self.test_name}.json"), result)

    @main_process_only
    def _log_curve(self, split, **metrics):
        self.curve.add(self.optimizer_step, split, **metrics)

    @main_process_only
    def _end_valid(self, stage_stats, epoch):
        self.curve.add(self.optimizer_step, "valid", **stage_stats)
        self.curve.plot(
            os.path.join(self.hparams.output_folder, "learning_curve.png"),
            title=self.__class__.__name__,
        )


class Stage1Brain(_SpeechMapperBrain):
    """Stage 1: projector vs. the frozen LLM embedding table (paper Sec. 2.2).

    Expected ``modules``: ``projector`` (``SpeechMapper``) and ``embeddings``
    (``llm.EmbeddingTable``). Expected hparams: ``loss`` (``SpeechMapperLoss``),
    ``lr_scheduler`` (``WarmupCosineScheduler``), ``output_folder``, ``log_interval``,
    ``train_logger``. Set ``brain.tokenizer`` (the LLM tokenizer) before ``fit``.
    """

    def compute_forward(self, batch, stage):
        """Projector forward on cached features."""
        batch = batch.to(self.device)
        feats, feat_lens = batch.feats
        return self.modules.projector(feats, feat_lens)

    def compute_objectives(self, predictions, batch, stage):
        """Eq. 2 against the embeddings of the target tokens padded with the pad embedding."""
        pred, pred_lens = predictions
        tokens, _ = batch.tokens
        num_tokens = torch.as_tensor(batch.num_tokens, device=pred.device)
        target = self.modules.embeddings.targets(
            tokens, pred.shape[1], num_tokens=num_tokens, utt_ids=batch.id
        )
        parts = self.hparams.loss(pred, target, num_tokens, pred_lens)
        self._accumulate(parts, pred.shape[0])
        if stage != sb.Stage.TRAIN:
            hyps = self.modules.embeddings.decode(
                pred.detach().float(),
                pred_lens,
                self.tokenizer,
                metric=getattr(self.hparams, "nearest_metric", "l2"),
            )
            self._add_outputs(batch.id, hyps, batch.wrd)
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint on validation WER, write test outputs."""
        stats = {"loss": stage_loss, **self._means(self.sums, self.count)}
        stats.pop("l_mse", None)
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        scored = self._score_outputs()
        stats.update({k: v for k, v in scored.items() if k in ("wer", "cer")})
        stats["truncated_targets"] = self.hparams.loss.truncated
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._end_valid({k: stats[k] for k in ("loss", "wer")}, epoch)
            self.checkpointer.save_and_keep_only(
                meta={"WER": stats["wer"], "loss": stage_loss, "epoch": epoch},
                min_keys=["WER"],
                num_to_keep=getattr(self.hparams, "num_checkpoints_to_keep", 2),
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"split": self.test_name, "decoding": "nearest-embedding"},
                test_stats=stats,
            )
            self._write_outputs(
                "nearest",
                "SpeechMapper stage 1 (nearest-embedding)",
                {**stats, **scored},
                {
                    "method": "nearest-embedding (no LLM forward)",
                    "metric": getattr(self.hparams, "nearest_metric", "l2"),
                },
            )
            self.last_test_stats = stats


class Stage2Brain(_SpeechMapperBrain):
    """Stage 2: IT adaptation on the frozen LLM (paper Sec. 2.3), CE (sigma=0) or CE+MSE.

    Trains on ASR data (one IT prompt, transcript targets: task-agnostic stage 2) or on
    task data whose batches carry their own ``prompt`` and ``target`` (task-specific ST / SQA
    stage 2, ``data.load_stage2_dataset``); the MSE term always targets the transcript.

    Expected ``modules``: ``projector`` and ``llm`` (``llm.FrozenLLM``). Expected hparams:
    ``loss`` (``Stage2Loss``), ``train_prompt`` (IT template), ``test_prompt`` (zero-shot ASR
    prompt), ``max_new_tokens``, ``valid_decode_max`` (utterances decoded at validation, 0 to
    skip), ``output_folder``, ``log_interval``, ``train_logger``.
    """

    table = None

    def compute_forward(self, batch, stage):
        """Projector forward, then CE through the frozen LLM on the instruction prompt."""
        batch = batch.to(self.device)
        feats, feat_lens = batch.feats
        pred, pred_lens = self.modules.projector(feats, feat_lens)
        if hasattr(batch, "prompt"):  # task-specific / multitask data (data.load_stage2_dataset)
            prompts, targets = list(batch.prompt), list(batch.target)
        else:  # ASR data: one IT prompt, the transcript as target
            prompts, targets = [self.hparams.train_prompt] * pred.shape[0], list(batch.wrd)
        ce = self.modules.llm(pred, pred_lens, prompts, targets)["loss"]
        return pred, pred_lens, ce

    def compute_objectives(self, predictions, batch, stage):
        """Eq. 3; at validation/test also greedy-decode with the zero-shot prompt."""
        pred, pred_lens, ce = predictions
        if self.hparams.loss.sigma > 0:
            tokens, _ = batch.tokens
            num_tokens = torch.as_tensor(batch.num_tokens, device=pred.device)
            if self.table is None:  # shares the LLM's (on-device) embedding weight
                self.table = self.llm.embedding_table()
            target = self.table.targets(
                tokens, pred.shape[1], num_tokens=num_tokens, utt_ids=batch.id
            )
            parts = self.hparams.loss(ce, pred, target, num_tokens, pred_lens)
        else:
            parts = self.hparams.loss(ce)
        self._accumulate(parts, pred.shape[0])
        if stage == sb.Stage.TEST or (
            stage == sb.Stage.VALID and len(self.outputs) < self.hparams.valid_decode_max
        ):
            ids = self.llm.generate_ids(
                pred.detach(),
                pred_lens,
                [self.hparams.test_prompt] * pred.shape[0],
                max_new_tokens=self.hparams.max_new_tokens,
            )
            stuck = [is_stuck(row, self.hparams.max_new_tokens) for row in ids]
            self._add_outputs(batch.id, self.llm.decode_ids(ids), batch.wrd, stuck)
        return parts["loss"]

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, checkpoint (lowest validation loss), write test outputs and WER/CER."""
        stats = {"loss": stage_loss, **self._means(self.sums, self.count)}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if self.outputs and stage == sb.Stage.VALID:
            stats.update({k: v for k, v in self._score_outputs().items() if k in ("wer", "cer")})
        elif self.outputs:
            stats.update(self._score_outputs())
        if self.hparams.loss.sigma > 0:
            stats["truncated_targets"] = self.hparams.loss.truncated
        if stage == sb.Stage.VALID:
            lr = self.optimizer.param_groups[0]["lr"]
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "lr": lr, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._end_valid({k: v for k, v in stats.items() if k in ("loss", "ce", "wer")}, epoch)
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss, "epoch": epoch},
                min_keys=["loss"],
                num_to_keep=getattr(self.hparams, "num_checkpoints_to_keep", 2),
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"split": self.test_name, "decoding": "greedy, zero-shot ASR prompt"},
                test_stats=stats,
            )
            sigma = self.hparams.loss.sigma
            objective = "ASR CE+MSE" if sigma > 0 else "ASR CE"
            self._write_outputs(
                "greedy",
                f"SpeechMapper stage 2 [{objective}]",
                {**stats, "sigma": sigma},
                {
                    "method": "greedy",
                    "max_new_tokens": self.hparams.max_new_tokens,
                    "prompt": self.hparams.test_prompt,
                },
                setting="zero-shot",
            )
            self.last_test_stats = stats


class MultitaskBrain(Stage2Brain):
    """IWSLT25 stages A and C: multitask instruction tuning through the LLM with CE.

    Stage A trains the projector alone (frozen LLM). Stage C ("fusion") trains the projector
    and the LLM's LoRA adapters together, each with its own optimizer and learning rate, on
    speech batches (``data.load_stage2_dataset``) interleaved with text batches
    (``data.load_text_dataset``): a batch without ``feats`` is a text batch.

    Expected ``modules``: ``projector`` and ``llm`` (with adapters in stage C). Expected
    hparams: those of ``Stage2Brain`` (``loss`` with sigma = 0), plus ``lora_opt_class``
    when the LLM carries adapters.
    """

    def init_optimizers(self):
        """One optimizer for the projector, one for the LoRA adapters (if any)."""
        super().init_optimizers()
        if hasattr(self.llm.model, "peft_config"):
            from .lora import lora_parameters

            self.lora_optimizer = self.hparams.lora_opt_class(lora_parameters(self.llm))
            self.optimizers_dict["lora_opt_class"] = self.lora_optimizer
            if self.checkpointer is not None:
                self.checkpointer.add_recoverable("lora_optimizer", self.lora_optimizer)

    def compute_forward(self, batch, stage):
        """Speech batches through the projector, text batches straight into the LLM."""
        if hasattr(batch, "feats"):
            return super().compute_forward(batch, stage)
        ce = self.modules.llm(None, None, list(batch.prompt), list(batch.target))["loss"]
        return None, None, ce

    def compute_objectives(self, predictions, batch, stage):
        """CE (eq. 3 with sigma = 0)."""
        if self.hparams.loss.sigma > 0:
            raise ValueError("The multitask stages train with CE only: set --sigma=0.")
        ce = predictions[2]
        parts = self.hparams.loss(ce)
        self._accumulate(parts, len(batch.id))
        return parts["loss"]


class TextLoRABrain(_SpeechMapperBrain):
    """IWSLT25 stage B: LoRA adapters on the LLM trained on text instruction data (MT and
    QA, ``data.load_text_dataset``), CE on the targets; the base weights stay frozen.

    Expected ``modules``: ``llm`` (``llm.FrozenLLM`` carrying adapters, ``lora.attach_lora``).
    Expected hparams: ``output_folder``, ``log_interval``, ``train_logger``; the checkpointer
    holds a ``lora.LoraCheckpoint`` (adapter weights only).
    """

    def init_optimizers(self):
        """Optimize the LoRA parameters only."""
        from .lora import lora_parameters

        self.optimizer = self.opt_class(lora_parameters(self.llm))
        self.optimizers_dict = {"opt_class": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)

    def compute_forward(self, batch, stage):
        """CE of the targets given the text prompts."""
        return self.modules.llm(None, None, list(batch.prompt), list(batch.target))["loss"]

    def compute_objectives(self, predictions, batch, stage):
        """The CE (logged as ``ce``)."""
        self._accumulate({"ce": predictions.detach()}, len(batch.id))
        return predictions

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, and checkpoint on the lowest validation loss."""
        stats = {"loss": stage_loss}
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        if stage == sb.Stage.VALID:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": epoch, "steps": self.optimizer_step},
                train_stats=self.train_stats,
                valid_stats=stats,
            )
            self._end_valid(stats, epoch)
            self.checkpointer.save_and_keep_only(
                meta={"loss": stage_loss, "epoch": epoch},
                min_keys=["loss"],
                num_to_keep=getattr(self.hparams, "num_checkpoints_to_keep", 2),
            )


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
    ``comet`` (``metrics.CometScorer`` or None), ``judges`` (list), ``output_folder``,
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
        from .prompts import fill_text, task_prompt

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
        from .decoding import is_stuck

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
        from .evaluation import score_outputs
        from .results import make_result, write_result

        hp = self.hparams
        guard = hp.repetition_guard
        metrics, signatures = score_outputs(
            hp.task,
            self.outputs,
            comet=hp.comet,
            judges=hp.judges,
            guarded=guard.stopped if guard is not None else 0,
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
            llm=_as_str(getattr(hp, "llm_source", None)),
            target_lang=langs.pop() if len(langs) == 1 else None,
            signatures=signatures,
            decoding={
                "system": hp.system,
                "max_new_tokens": hp.max_new_tokens,
                "assistant_prefix": hp.assistant_prefix,
                "example_prompt": self._example_prompt(),
                "repetition_guard": guard is not None,
                "lora_adapter": _as_str(getattr(hp, "lora_adapter", None)),
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
