"""Tests of the stage-1 speed levers (``training.speed``, ``data.padding``, the
``Stage1Brain`` step): each switch, through SpeechBrain's ``fit``, trains the same model with
the same logged losses as the default eager loop (fp32, CPU); the deferred checks still stop a
run whose loss is not finite; the running loss terms equal host-side float sums."""

import json
import types

import pytest
import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

import speechmapper_plugin.training.stage1 as stage1_module
from speechmapper_plugin.models.embeddings import EmbeddingTable
from speechmapper_plugin.models.losses import SpeechMapperLoss
from speechmapper_plugin.models.speechmapper import SpeechMapper
from speechmapper_plugin.training.brain import _SpeechMapperBrain
from speechmapper_plugin.training.speed import compile_objective
from speechmapper_plugin.training.stage1 import Stage1Brain

VOCAB, DIM, FEAT = 40, 16, 8


def _dataset(num=12, seed=0, nan_row=None):
    gen = torch.Generator().manual_seed(seed)
    feats, rows = {}, {}
    for i in range(num):
        n = int(torch.randint(12, 60, (1,), generator=gen))
        feats[f"u{i}"] = torch.randn(n, FEAT, generator=gen)
        if nan_row == i:
            feats[f"u{i}"][0, 0] = float("nan")
        tokens = torch.randint(0, VOCAB - 1, (max(1, n // 8),), generator=gen)
        rows[f"u{i}"] = {"duration": n / 25, "ids": tokens.tolist(), "wrd": "x"}
    data = DynamicItemDataset(rows)

    @sb.utils.data_pipeline.takes("id", "ids")
    @sb.utils.data_pipeline.provides("feats", "tokens", "num_tokens")
    def pipeline(utt_id, tokens):
        yield feats[utt_id]
        yield torch.LongTensor(tokens)
        yield len(tokens)

    data.add_dynamic_item(pipeline)
    data.set_output_keys(["id", "feats", "tokens", "num_tokens", "wrd"])
    return data


def _train(tmp_path, name, epochs=2, data=None, compile_backend=None, **levers):
    """Two epochs of Stage1Brain.fit over 12 utterances in batches of 4 (3 steps/epoch)."""
    torch.manual_seed(0)
    projector = SpeechMapper(FEAT, [16, 24], [24, DIM], num_layers=1, nhead=2, dropout=0.0)
    table = EmbeddingTable(torch.randn(VOCAB, DIM) * 0.02, pad_id=VOCAB - 1)
    out = tmp_path / name
    hparams = {
        "loss": SpeechMapperLoss(),
        "output_folder": str(out),
        "log_interval": 2,
        "train_logger": FileTrainLogger(str(out / "log.txt")),
        "epoch_counter": EpochCounter(epochs),
        **levers,
    }
    fused = levers.pop("fused_adamw", None)
    brain = Stage1Brain(
        modules={"projector": projector, "embeddings": table},
        opt_class=lambda params: torch.optim.AdamW(params, lr=1e-3, fused=fused),
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True},
    )
    brain.fit(
        brain.hparams.epoch_counter,
        data if data is not None else _dataset(),
        train_loader_kwargs={"batch_size": 4, "shuffle": False},
    )
    curve = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    return brain, projector, curve


def _close(a, b, rtol=1e-5):
    assert a == pytest.approx(b, rel=rtol, abs=1e-9)


def test_every_lever_trains_the_same_model_with_the_same_logged_losses(tmp_path, monkeypatch):
    ref_brain, ref_proj, ref_curve = _train(tmp_path, "eager")
    # compile_step with the "eager" backend: torch.compile's graph capture (fullgraph: no
    # graph break, i.e. no host read, in the step) without code generation, too slow for the
    # test suite on 2 cores (test_objectives.py also traces the backward with aot_eager).
    monkeypatch.setattr(
        stage1_module,
        "compile_objective",
        lambda module, mode: compile_objective(module, backend="eager", fullgraph=True),
    )
    brain, proj, curve = _train(
        tmp_path,
        "levers",
        pad_multiple=16,
        deferred_sync=True,
        compile_step=True,
        fused_adamw=True,
    )
    assert brain._compiled_objective is not None
    assert [(r["step"], r["split"]) for r in curve] == [(r["step"], r["split"]) for r in ref_curve]
    assert len(curve) == 3  # log_interval 2 over 6 steps
    for ours, ref in zip(curve, ref_curve):
        for key in ("loss", "mse_word", "mse_pad", "cosine", "lr"):
            _close(ours[key], ref[key])
    _close(brain.train_stats["loss"], ref_brain.train_stats["loss"])
    for key, value in ref_brain.train_stats.items():
        _close(brain.train_stats[key], value)
    # The trained models compute the same function. (Not every weight is equal: the gradient
    # of an attention key bias is zero up to rounding, and Adam turns that noise into +-lr.)
    feats = torch.randn(3, 40, FEAT, generator=torch.Generator().manual_seed(5))
    lens = torch.tensor([1.0, 0.6, 0.3])
    with torch.no_grad():
        ours, ref = proj.eval()(feats, lens)[0], ref_proj.eval()(feats, lens)[0]
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


def test_deferred_stage_loss_is_speechbrains_running_average(tmp_path):
    ref, _, _ = _train(tmp_path, "sb", epochs=1)
    ours, _, _ = _train(tmp_path, "deferred", epochs=1, deferred_sync=True)
    # Same recursion in float64 on the same values: equal to the last bit.
    assert ours.train_stats["loss"] == ref.train_stats["loss"]
    assert ours.train_stats == ref.train_stats


def test_deferred_checks_still_stop_a_non_finite_loss(tmp_path):
    with pytest.raises(ValueError, match="patience is exhausted .deferred_sync"):
        _train(
            tmp_path,
            "nan",
            data=_dataset(nan_row=1),
            deferred_sync=True,
            nonfinite_patience=0,
        )


def test_running_loss_terms_equal_host_float_sums():
    class Sums(_SpeechMapperBrain):
        def __init__(self):  # only the running sums are exercised
            self.hparams = types.SimpleNamespace()

    brain = Sums()
    brain.on_stage_start(sb.Stage.TRAIN)
    gen = torch.Generator().manual_seed(0)
    expected, count = {}, 0
    for size in (3, 5, 2, 7):
        parts = {"a": torch.rand((), generator=gen) * 1e3, "b": torch.rand((), generator=gen)}
        parts["n"] = 4  # not a tensor: ignored
        brain._accumulate(parts, size)
        for key in ("a", "b"):
            expected[key] = expected.get(key, 0.0) + float(parts[key]) * size
        count += size
    means = brain._means(brain.sums, brain.count)
    assert means == {k: v / count for k, v in expected.items()}  # bit-identical


def test_bucket_padding_refuses_to_replace_another_collate_fn(tmp_path):
    brain = Stage1Brain(
        modules={"projector": torch.nn.Linear(1, 1)},
        hparams={"pad_multiple": 16, "output_folder": str(tmp_path)},
        run_opts={"device": "cpu", "noprogressbar": True},
    )
    with pytest.raises(ValueError, match="pad_multiple=16 pads the training batches"):
        brain.make_dataloader(_dataset(2), sb.Stage.TRAIN, collate_fn=lambda batch: batch)
    loader = brain.make_dataloader(_dataset(2), sb.Stage.TRAIN, batch_size=2)
    assert next(iter(loader)).feats.data.shape[1] % 16 == 0
