"""End-to-end tests of feature extraction through ``recipes/LibriSpeech/extract_features.py``
on the tiny preset, as a user runs it: two extractions into one cache, a second one started
while the first writes, a truncated cache shard, a kill during extraction, a 10-minute file.

A named pipe (FIFO) in a manifest holds an extraction at a known point: reading it blocks
until the test opens it for writing, so the test acts while the extraction is mid-way,
without timing races."""

import csv
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from recipe_runs import PRESET, ROOT, run_recipe

from speechmapper_plugin.features.cache import CacheShardError, FeatureCache
from speechmapper_plugin.tiny.preset import preset_overrides
from speechmapper_plugin.utils.locks import FolderLockedError

FEATURES = os.path.join("features", "fbank80_avg4")
TRAIN, DEV_TEST = ["train-clean-100"], ["dev-clean", "test-clean"]


def _cache(tiny, folder, features=False):
    """A cache folder holding the fixture's manifests (and, with ``features``, its features)."""
    source = tiny["common"]["cache_folder"]
    shutil.copytree(os.path.join(source, "manifests"), folder / "manifests")
    if features:
        shutil.copytree(os.path.join(source, FEATURES), folder / FEATURES)
    return folder


def _args(tiny, cache, **extra):
    return preset_overrides(
        PRESET,
        ["features"],
        data_folder=tiny["common"]["data_folder"],
        cache_folder=str(cache),
        skip_prep=True,  # the manifests are the test's own
        **extra,
    )


def _extract(tiny, cache, **extra):
    run_recipe("extract_features.py", "features.yaml", _args(tiny, cache, **extra))
    path = cache / FEATURES / "logs" / "extract_summary.json"
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _start(tiny, cache, log, **extra):
    """The recipe in a subprocess, as `python recipes/LibriSpeech/extract_features.py ...`."""
    cmd = [
        sys.executable,
        os.path.join(ROOT, "recipes", "LibriSpeech", "extract_features.py"),
        os.path.join(ROOT, "hparams", "features.yaml"),
        *_args(tiny, cache, **extra),
    ]
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    out = open(log, "w", encoding="utf-8")  # noqa: SIM115 (closed by _finish)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    proc.log, proc.out = log, out
    return proc


def _finish(proc, timeout=300):
    proc.wait(timeout=timeout)
    proc.out.close()
    return proc.returncode, proc.log.read_text(encoding="utf-8")


def _add_row(cache, split, position, utt_id, wav, duration):
    path = cache / "manifests" / f"{split}.csv"
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    fields = list(rows[0])
    rows.insert(position, {**rows[0], "ID": utt_id, "wav": str(wav), "duration": duration})
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


def _blocker(cache, position=40):
    """A FIFO as the train audio at ``position``: the extraction blocks when it reads it."""
    fifo = cache / "blocker.flac"
    os.mkfifo(fifo)
    _add_row(cache, "train-clean-100", position, "blocker", fifo, "1.0")
    return fifo


def _open_when_read(fifo, proc, timeout=240):
    """Waits until ``proc`` is blocked reading ``fifo``; returns a write end held open, so that
    it stays blocked (in read) until the end is closed."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(_finish(proc)[1][-3000:])
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        time.sleep(0.05)
    raise AssertionError(f"the extraction never read {fifo}")


def _release(fifo, proc, fd):
    """Ends every read of ``fifo`` (end of file: unreadable audio, skipped) until ``proc`` exits."""
    os.close(fd)
    while proc.poll() is None:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError as err:
            if err.errno != errno.ENXIO:
                raise
        time.sleep(0.05)


def _largest_difference(cache, reference, ids):
    assert set(ids) <= set(cache.ids()), sorted(set(ids) - set(cache.ids()))
    return max(float((cache[i] - reference[i]).abs().max()) for i in ids)


def _reference(tiny):
    return FeatureCache(os.path.join(tiny["common"]["cache_folder"], FEATURES))


def test_two_extractions_into_one_cache_at_once_lose_nothing(tiny, tmp_path):
    """Train in one, dev + test in the other, started together: one is refused with the
    holder's pid (or both finish, one after the other); nothing is overwritten."""
    cache = _cache(tiny, tmp_path / "cache")
    first = _start(tiny, cache, tmp_path / "train.log", splits=TRAIN)
    second = _start(tiny, cache, tmp_path / "dev_test.log", splits=DEV_TEST)
    runs = {"train": (first, _finish(first)), "dev_test": (second, _finish(second))}
    assert any(rc == 0 for _, (rc, _) in runs.values())
    for name, (proc, (rc, output)) in runs.items():
        if rc != 0:
            other = second if proc is first else first
            assert "FolderLockedError" in output and f"pid {other.pid}" in output, output[-3000:]
            assert "feature extraction" in output
            _extract(tiny, cache, splits=TRAIN if name == "train" else DEV_TEST)
    reference = _reference(tiny)
    assert len(FeatureCache(cache / FEATURES)) == len(reference) == 64
    assert _largest_difference(FeatureCache(cache / FEATURES), reference, reference.ids()) == 0


def test_a_second_extraction_while_the_first_writes_is_refused(tiny, tmp_path):
    cache = _cache(tiny, tmp_path / "cache")
    fifo = _blocker(cache)
    first = _start(
        tiny, cache, tmp_path / "first.log", splits=TRAIN, extract_sort_window=16,
        extract_flush_seconds=0,
    )  # fmt: skip
    fd = _open_when_read(fifo, first)
    try:
        assert len(FeatureCache(cache / FEATURES)) == 32  # the first writes: 2 windows stored
        with pytest.raises(FolderLockedError) as err:
            _extract(tiny, cache, splits=DEV_TEST)
        message = str(err.value)
        assert str(cache / FEATURES) in message and f"pid {first.pid}" in message
        assert "feature extraction" in message and "extract_features.py" in message
    finally:
        _release(fifo, first, fd)
    rc, output = _finish(first)
    assert rc == 0 and "FileNotFoundError" not in output, output[-3000:]
    summary = _extract(tiny, cache, splits=DEV_TEST)
    assert summary["train-clean-100"]["extracted"] == 48  # the first's summary is kept
    assert summary["train-clean-100"]["skipped_missing"] == 1  # the blocker: no audio
    assert summary["dev-clean"]["extracted"] == 8 and summary["test-clean"]["extracted"] == 8
    reference = _reference(tiny)
    # Other windows, hence other batches than the reference (the fbank stand-in does not
    # depend on its batch: measured 0); a real encoder may differ by fp16 rounding.
    assert _largest_difference(FeatureCache(cache / FEATURES), reference, reference.ids()) < 0.02


def test_a_truncated_shard_is_named_set_aside_and_reextracted(tiny, tmp_path):
    cache = _cache(tiny, tmp_path / "cache", features=True)
    shard = cache / FEATURES / "shard-000001.safetensors"  # dev-clean's
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(CacheShardError) as err:
        FeatureCache(cache / FEATURES)
    assert str(shard) in str(err.value) and "truncated" in str(err.value)

    summary = _extract(tiny, cache)
    assert summary["train-clean-100"]["damaged_shards"][0][:2] == [
        shard.name,
        shard.name + ".damaged",
    ]
    assert (shard.parent / (shard.name + ".damaged")).exists()  # set aside, not deleted
    assert [summary[s]["extracted"] for s in TRAIN + DEV_TEST] == [0, 8, 0]
    reference = _reference(tiny)
    assert _largest_difference(FeatureCache(cache / FEATURES), reference, reference.ids()) == 0


def test_a_killed_extraction_resumes_with_the_same_features(tiny, tmp_path):
    """Killed (SIGKILL) while blocked in its third window: every batch it had encoded is on
    disk; the resumed run re-forms the remaining batches, so its features equal those of an
    uninterrupted run exactly."""
    options = dict(splits=TRAIN, extract_sort_window=16, extract_flush_seconds=0)
    cache = _cache(tiny, tmp_path / "cache")
    fifo = _blocker(cache)
    proc = _start(tiny, cache, tmp_path / "killed.log", **options)
    fd = _open_when_read(fifo, proc)
    stored = len(FeatureCache(cache / FEATURES))
    os.kill(proc.pid, signal.SIGKILL)
    _finish(proc)
    os.close(fd)
    assert stored == 32  # windows 1-2 encoded and written; window 3 was being read
    os.remove(fifo)
    fifo.write_bytes(b"not audio")  # the resumed and the reference runs skip it alike

    summary = _extract(tiny, cache, **options)["train-clean-100"]
    assert summary["already_cached"] == 32 and summary["extracted"] == 16
    assert summary["skipped_missing"] == 1
    uninterrupted = _cache(tiny, tmp_path / "uninterrupted")
    shutil.copy(cache / "manifests" / "train-clean-100.csv", uninterrupted / "manifests")
    _extract(tiny, uninterrupted, **options)
    reference = FeatureCache(uninterrupted / FEATURES)
    assert len(reference) == 48
    assert _largest_difference(FeatureCache(cache / FEATURES), reference, reference.ids()) == 0


def test_a_ten_minute_file_is_encoded_alone(tiny, tmp_path):
    """--max_duration=700 lets a 600-s file in: it is one batch alone instead of padding a
    batch of short utterances to 600 s; the short ones keep the reference's batches."""
    cache = _cache(tiny, tmp_path / "cache")
    long_wav = tmp_path / "long.flac"
    noise = np.random.default_rng(0).standard_normal(600 * 16000) * 0.1
    sf.write(long_wav, noise.astype("float32"), 16000)
    _add_row(cache, "train-clean-100", 10, "long", long_wav, "600.0")
    summary = _extract(tiny, cache, splits=TRAIN, max_duration=700.0)["train-clean-100"]
    assert summary["extracted"] == 49 and summary["largest_batch_seconds"] == 600.0
    assert summary["padded_seconds"] < 1.1 * summary["audio_seconds"]
    features = FeatureCache(cache / FEATURES)
    assert features.length("long") == 15001  # 60,001 fbank frames averaged by 4
    assert torch.isfinite(features["long"]).all()
    reference = _reference(tiny)
    train = [i for i in reference.ids() if i in features and i != "long"]
    assert len(train) == 48 and _largest_difference(features, reference, train) == 0
