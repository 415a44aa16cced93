"""Tests for the stage-2 task data of speechmapper_plugin.data.datasets: extraction items (segments,
shared audio), the multitask stage-2 dataset (prompts and targets per task) and the
task-mixture batch sampler (ratios, reproducibility, resume, errors)."""

import collections

import pytest
import torch
from speechbrain.dataio.batch import PaddedBatch

from speechmapper_plugin.data.datasets import load_stage2_dataset
from speechmapper_plugin.data.manifests import ANSWER_SEPARATOR, extraction_items, write_csv
from speechmapper_plugin.data.prompts import st_instruction
from speechmapper_plugin.data.samplers import TaskMixtureBatchSampler, mixture_groups
from speechmapper_plugin.features.cache import FeatureCache, FeatureCacheWriter
from speechmapper_plugin.tiny.llm import train_tokenizer

DIM = 4


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(["the cat sat on the mat", "die katze", "who sat", "a dog ran"])


def _cache(folder, lengths):
    with FeatureCacheWriter(str(folder), {"dim": DIM}) as writer:
        for key, frames in lengths.items():
            writer.add(key, torch.full((frames, DIM), float(frames)))
    return FeatureCache(str(folder))


def test_extraction_items_segments_and_shared_audio(tmp_path):
    path = tmp_path / "m.csv"
    rows = [
        {"ID": "s1-de", "wav": "/a.m4a", "start": 0.5, "stop": 1.25, "audio_id": "s1"},
        {"ID": "s1-fr", "wav": "/a.m4a", "start": 0.5, "stop": 1.25, "audio_id": "s1"},
        {"ID": "s2-de", "wav": "/a.m4a", "start": 2.0, "stop": 3.0, "audio_id": "s2"},
    ]
    write_csv(str(path), rows, ["ID", "wav", "start", "stop", "audio_id"])
    assert extraction_items(str(path)) == [("s1", "/a.m4a", 0.5, 1.25), ("s2", "/a.m4a", 2.0, 3.0)]


def _write(path, rows):
    fields = list(rows[0])
    write_csv(str(path), rows, fields)
    return str(path)


def test_stage2_dataset_prompts_targets_and_features(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", {"u1": 3, "p1": 5})
    st = _write(
        tmp_path / "st.csv",
        [{"ID": "u1-de", "audio_id": "u1", "wrd": "the cat", "tgt": "die katze", "tgt_lang": "de"}],
    )
    sqa = _write(
        tmp_path / "sqa.csv",
        [
            {
                "ID": f"q{i}",
                "audio_id": "p1",
                "wrd": "the cat sat on the mat",
                "question": "who sat?",
                "tgt": f"the cat{ANSWER_SEPARATOR}a cat",
            }
            for i in (1, 2)
        ],
    )
    asr_cache = _cache(tmp_path / "asr", {"a1": 2})
    asr = _write(tmp_path / "asr.csv", [{"ID": "a1", "wrd": "a dog ran"}])
    data = load_stage2_dataset(
        [
            {"csv": st, "cache": cache, "task": "st"},
            {"csv": sqa, "cache": cache, "task": "sqa"},
            {"csv": asr, "cache": asr_cache, "task": "asr"},
        ],
        tokenizer,
    )
    items = {data[i]["id"]: data[i] for i in range(len(data))}
    assert set(items) == {"u1-de", "q1", "q2", "a1"}
    assert items["u1-de"]["target"] == "die katze"
    assert items["u1-de"]["prompt"].endswith(st_instruction("de"))
    assert items["q1"]["target"] == "the cat"  # the first reference answer
    assert "who sat?" in items["q1"]["prompt"]
    assert items["a1"]["target"] == "a dog ran" and "transcribe" in items["a1"]["prompt"]
    # features by audio_id: both questions read the passage's features, ASR its own cache
    assert items["q2"]["feats"].shape == (5, DIM) and items["a1"]["feats"].shape == (2, DIM)
    assert items["u1-de"]["num_tokens"] == len(
        tokenizer("the cat", add_special_tokens=False)["input_ids"]
    )
    batch = PaddedBatch([items["q1"], items["a1"]])
    assert list(batch.task) == ["sqa", "asr"] and batch.feats.data.shape == (2, 5, DIM)
    assert mixture_groups(data, "task") == {"st": [0], "sqa": [1, 2], "asr": [3]}
    assert mixture_groups(data, "task_lang")["st-de"] == [0]


def test_stage2_dataset_errors(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", {"u1": 3})
    no_lang = _write(tmp_path / "st.csv", [{"ID": "u1", "wrd": "the cat", "tgt": "die katze"}])
    with pytest.raises(KeyError, match=r"lacks the column\(s\) \['tgt_lang'\] that task 'st'"):
        load_stage2_dataset([{"csv": no_lang, "cache": cache, "task": "st"}], tokenizer)
    asr = _write(tmp_path / "asr.csv", [{"ID": "u1", "wrd": "the cat"}])
    with pytest.raises(ValueError, match="'u1' of .* also occurs in another stage-2 source"):
        load_stage2_dataset(
            [
                {"csv": asr, "cache": cache, "task": "asr"},
                {"csv": asr, "cache": cache, "task": "asr"},
            ],
            tokenizer,
        )
    with pytest.raises(ValueError, match="Unknown task 'mt'"):
        load_stage2_dataset([{"csv": asr, "cache": cache, "task": "mt"}], tokenizer)


GROUPS = {"asr": list(range(0, 50)), "sqa": list(range(50, 60))}


def test_mixture_sampler_ratio_and_single_group_batches():
    sampler = TaskMixtureBatchSampler(GROUPS, {"asr": 0.5, "sqa": 0.5}, 4, num_steps=2000)
    counts = collections.Counter()
    for batch in sampler:
        assert len(batch) == 4
        kinds = {"asr" if i < 50 else "sqa" for i in batch}
        assert len(kinds) == 1  # a batch never mixes groups
        counts[kinds.pop()] += 1
    assert abs(counts["asr"] / 2000 - 0.5) < 0.04
    assert len(sampler) == 2000


def test_mixture_sampler_covers_a_group_before_repeating():
    sampler = TaskMixtureBatchSampler(GROUPS, {"sqa": 1.0}, 5, num_steps=2, seed=3)
    first, second = list(sampler)
    assert sorted(first + second) == GROUPS["sqa"]  # 10 items: one full pass, no repeat


def test_mixture_sampler_is_reproducible_per_epoch():
    make = lambda: TaskMixtureBatchSampler(GROUPS, {"asr": 0.3, "sqa": 0.7}, 3, 20, seed=7)  # noqa: E731
    a, b = make(), make()
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    a.set_epoch(1)
    assert list(a) == list(b)


def test_mixture_sampler_errors():
    with pytest.raises(ValueError, match=r"name group\(s\) \['st'\] that have no data"):
        TaskMixtureBatchSampler(GROUPS, {"asr": 0.5, "st": 0.5}, 2, 3)
    with pytest.raises(ValueError, match="No data for the group"):
        TaskMixtureBatchSampler({"asr": [], "sqa": [1]}, {"asr": 1.0}, 2, 3)
    with pytest.raises(ValueError, match="must be >= 0"):
        TaskMixtureBatchSampler(GROUPS, {"asr": 1.0, "sqa": -1.0}, 2, 3)
