"""Tests of ``speechmapper_plugin.data.datasets`` (data I/O shared by every recipe)."""

import csv
import logging

import pytest
import torch

from speechmapper_plugin.data.datasets import dataio_prepare, load_asr_dataset
from speechmapper_plugin.data.manifests import write_csv

from .helpers import DIM, UTTS, _cache, _feats, _manifest, _rows

LOGGER = "speechmapper_plugin.data"


def test_dataset_items(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    data = load_asr_dataset(_manifest(tmp_path / "m.csv", UTTS), cache, tokenizer)
    assert len(data) == len(UTTS)
    items = {item["id"]: item for item in data}
    assert set(items) == set(UTTS)
    for utt_id, item in items.items():
        assert set(item) == {"id", "feats", "wrd", "tokens", "num_tokens"}
        assert item["feats"].dtype == torch.float32
        assert torch.equal(item["feats"], _feats(utt_id))
        assert item["wrd"] == UTTS[utt_id][2]
        expected = tokenizer.encode(UTTS[utt_id][2], add_special_tokens=False)
        assert item["tokens"].dtype == torch.long
        assert item["tokens"].tolist() == expected
        assert tokenizer.bos_token_id not in expected  # no special tokens in the target
        assert item["num_tokens"] == len(expected)
        assert tokenizer.decode(item["tokens"]) == UTTS[utt_id][2]


def test_other_text_column(tmp_path, tokenizer):
    rows = [{"ID": i, "duration": 1.0, "raw": "HELLO"} for i in UTTS]
    path = tmp_path / "m.csv"
    write_csv(str(path), rows, ["ID", "duration", "raw"])
    cache = _cache(tmp_path / "cache", UTTS)
    item = load_asr_dataset(str(path), cache, tokenizer, text_key="raw")[0]
    assert item["wrd"] == "HELLO"
    with pytest.raises(KeyError, match=r"no column 'wrd' \(has \['duration', 'raw'\]\)"):
        load_asr_dataset(str(path), cache, tokenizer)


def test_utterances_missing_from_the_cache_are_dropped_with_a_warning(tmp_path, tokenizer, caplog):
    kept = ["s1-c1-0001", "s2-c1-0002", "s3-c2-0001"]
    cache = _cache(tmp_path / "cache", kept)
    manifest = _manifest(tmp_path / "m.csv", UTTS)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        data = load_asr_dataset(manifest, cache, tokenizer)
    assert sorted(item["id"] for item in data) == kept
    assert "2 of 5 utterances have no cached features" in caplog.text
    assert "s1-c1-0002" in caplog.text
    for item in data:  # the remaining items still carry their own features
        assert torch.equal(item["feats"], _feats(item["id"]))


def test_all_utterances_missing_is_an_error(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", ["s1-c1-0001"])
    manifest = _manifest(tmp_path / "m.csv", ["s2-c1-0001", "s2-c1-0002"])
    with pytest.raises(
        ValueError, match="None of the utterances of .*m.csv is in the feature cache"
    ):
        load_asr_dataset(manifest, cache, tokenizer)


def test_several_manifests_are_merged(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    first = _manifest(tmp_path / "a.csv", ["s1-c1-0001", "s1-c1-0002"])
    second = _manifest(tmp_path / "b.csv", ["s2-c1-0001", "s2-c1-0002", "s3-c2-0001"])
    data = load_asr_dataset([first, second], cache, tokenizer)
    assert sorted(item["id"] for item in data) == sorted(UTTS)


def test_duplicate_ids_across_manifests_are_an_error(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    first = _manifest(tmp_path / "a.csv", ["s1-c1-0001", "s1-c1-0002"])
    second = _manifest(tmp_path / "b.csv", ["s1-c1-0002", "s2-c1-0001"])
    with pytest.raises(ValueError, match=r"b.csv repeats 1 utterance ID.*\['s1-c1-0002'\]"):
        load_asr_dataset([first, second], cache, tokenizer)


def test_missing_or_empty_manifest(tmp_path, tokenizer):
    cache = _cache(tmp_path / "cache", UTTS)
    missing = str(tmp_path / "train-clean-100.csv")
    with pytest.raises(FileNotFoundError, match="train-clean-100.csv does not exist.*prepare"):
        load_asr_dataset([_manifest(tmp_path / "a.csv", UTTS), missing], cache, tokenizer)
    empty = tmp_path / "empty.csv"
    empty.write_text("ID,duration,wav,spk_id,wrd\n")
    with pytest.raises(ValueError, match="empty.csv holds no utterance"):
        load_asr_dataset(str(empty), cache, tokenizer)


def test_dataio_prepare(tmp_path, tokenizer):
    _cache(tmp_path / "cache", UTTS)
    folder = tmp_path / "manifests"
    folder.mkdir()
    _manifest(folder / "train-a.csv", ["s1-c1-0001", "s1-c1-0002"])
    _manifest(folder / "train-b.csv", ["s2-c1-0001"])
    _manifest(folder / "dev.csv", ["s2-c1-0002"])
    _manifest(folder / "test.csv", ["s3-c2-0001"])
    hparams = {
        "feature_folder": str(tmp_path / "cache"),
        "feature_dim": DIM,
        "manifest_folder": str(folder),
        "train_splits": ["train-a", "train-b"],
        "valid_split": "dev",
        "test_splits": ["test"],
    }
    train, valid, tests = dataio_prepare(hparams, tokenizer)
    assert len(train) == 3 and len(valid) == 1 and list(tests) == ["test"]
    assert tests["test"][0]["id"] == "s3-c2-0001"
    with pytest.raises(
        ValueError, match=f"feature_dim=80 .* holds {DIM}-dim .*--feature_dim={DIM}"
    ):
        dataio_prepare({**hparams, "feature_dim": 80}, tokenizer)


def test_csv_module_reads_what_write_csv_writes(tmp_path):
    path = _manifest(tmp_path / "m.csv", UTTS)
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["ID"] for r in rows] == list(UTTS)
    assert rows[0] == {k: str(v) for k, v in _rows(UTTS)[0].items()}


def test_an_empty_transcript_is_an_error_naming_file_column_and_row(tmp_path, tokenizer):
    """A hand-written manifest with an empty target: refused, not trained on (issue 17)."""
    rows = _rows(sorted(UTTS))
    rows[1]["wrd"] = "  "
    path = tmp_path / "hand.csv"
    write_csv(str(path), rows, list(rows[0]))
    with pytest.raises(ValueError) as err:
        load_asr_dataset(str(path), _cache(tmp_path / "cache", sorted(UTTS)), tokenizer)
    assert str(err.value) == (
        f"Manifest {path}: 1 row(s) have an empty 'wrd', e.g. ['{rows[1]['ID']}']; every row "
        "needs one (fill it in or remove the row)."
    )
