"""Tests for speechmapper_plugin.evaluation.results: schema, validation messages, file names, loading."""

import json
import logging
import os
from datetime import datetime
from importlib import metadata

import numpy as np
import pytest
import torch

from speechmapper_plugin.evaluation.results import (
    SCHEMA,
    load_results,
    make_result,
    result_key,
    validate_result,
    write_result,
)

OUTPUTS = [
    {"id": "utt1", "hypothesis": "Hola mundo.", "reference": "Hola, mundo.", "source": "hi"},
    {"id": "utt2", "hypothesis": "Adiós.", "reference": "Adiós."},
]


def st_result(seed=1, system="Stage 2 [ASR CE+MSE]", target_lang="es", **kw):
    return make_result(
        system,
        "EuroParl-ST",
        "test",
        "st",
        {"comet": 0.8, "bleu": 30.0},
        OUTPUTS,
        seed=seed,
        setting="zero-shot",
        llm="meta-llama/Llama-3.1-8B-Instruct",
        target_lang=target_lang,
        signatures={"bleu": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp"},
        decoding={"max_new_tokens": 200, "prompt": "Translate"},
        **kw,
    )


def test_make_result_fills_the_schema():
    r = st_result()
    assert r["schema"] == SCHEMA == "speechmapper-result/1"
    assert r["num_utterances"] == 2
    assert r["outputs"] == OUTPUTS and r["outputs"][0] is not OUTPUTS[0]  # copied
    assert r["source_lang"] == "en" and r["target_lang"] == "es" and r["seed"] == 1
    assert datetime.fromisoformat(r["created"]).tzinfo is not None
    assert r["versions"]["python"].count(".") == 2
    assert r["versions"]["torch"] == metadata.version("torch")
    assert r["versions"]["sacrebleu"] == metadata.version("sacrebleu")
    assert r["decoding"] == {"max_new_tokens": 200, "prompt": "Translate"}
    json.dumps(r, allow_nan=False)  # plain JSON


def test_metric_values_become_floats():
    r = make_result(
        "S",
        "LibriSpeech",
        "test-clean",
        "asr",
        {"wer": np.float32(2.5), "cer": torch.tensor(1.25), "n_stuck": 3},
        [],
    )
    assert r["metrics"] == {"wer": 2.5, "cer": 1.25, "n_stuck": 3.0}
    assert all(type(v) is float for v in r["metrics"].values())
    assert r["target_lang"] is None and r["num_utterances"] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"task": "mt"}, "key 'task' is 'mt' but must be one of asr, st, sqa"),
        ({"target_lang": None}, "key 'target_lang' is None but must be a non-empty string"),
        ({"metrics": {"comet": float("nan")}}, "'comet' is nan but must be a finite number"),
        ({"metrics": {}}, "key 'metrics' is {} but must be a non-empty"),
        ({"seed": True}, "key 'seed' is True but must be an integer or null"),
        ({"setting": "few-shot"}, "key 'setting' is 'few-shot' but must be null or one of"),
        ({"system": " "}, "key 'system' is ' ' but must be a non-empty string"),
        ({"signatures": {"bleu": 13}}, "'signatures' is {'bleu': 13} but must be a {str: str}"),
        (
            {"outputs": [{"id": "a", "hypothesis": None, "reference": "b"}]},
            "entry 0 field 'hypothesis' is None but must be a string",
        ),
        (
            {"outputs": [{"id": "a", "hypothesis": "x", "reference": "y"}] * 2},
            "id 'a' appears twice",
        ),
        ({"decoding": {"stop": {1, 2}}}, "'decoding' must be JSON-serializable"),
    ],
)
def test_make_result_rejects_bad_values(kwargs, message):
    args = {
        "system": "S",
        "dataset": "CoVoST2",
        "split": "test",
        "task": "st",
        "metrics": {"comet": 0.7},
        "outputs": [],
        "target_lang": "de",
    }
    args.update(kwargs)
    with pytest.raises(ValueError) as err:
        make_result(
            args.pop("system"),
            args.pop("dataset"),
            args.pop("split"),
            args.pop("task"),
            args.pop("metrics"),
            args.pop("outputs"),
            **args,
        )
    assert message in str(err.value)
    assert str(err.value).startswith("make_result: ")


def test_validate_result_names_the_file_and_the_key():
    r = st_result()
    del r["decoding"]
    with pytest.raises(ValueError, match=r"^runs/a\.json: missing key 'decoding'"):
        validate_result(r, where="runs/a.json")
    r = st_result()
    r["num_utterances"] = 5
    with pytest.raises(ValueError, match="'num_utterances' is 5 but 'outputs' holds 2 entries"):
        validate_result(r, where="runs/a.json")
    with pytest.raises(ValueError, match="must be a JSON object, got list"):
        validate_result([], where="runs/a.json")


def test_seeds_and_pairs_get_their_own_files(tmp_path):
    paths = [
        write_result(tmp_path, st_result(seed=1)),
        write_result(tmp_path, st_result(seed=2)),
        write_result(tmp_path, st_result(seed=1, target_lang="fr")),
        write_result(tmp_path, st_result(seed=None)),
    ]
    assert [os.path.basename(p) for p in paths] == [
        "stage-2-asr-ce-mse__europarl-st__test__st__en-es__seed1.json",
        "stage-2-asr-ce-mse__europarl-st__test__st__en-es__seed2.json",
        "stage-2-asr-ce-mse__europarl-st__test__st__en-fr__seed1.json",
        "stage-2-asr-ce-mse__europarl-st__test__st__en-es__noseed.json",
    ]
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths)
    with open(paths[1], encoding="utf-8") as f:
        written = json.load(f)
    expected = st_result(seed=2)
    expected["created"] = written["created"]
    assert written == expected


def test_write_result_round_trip_and_explicit_path(tmp_path):
    r = st_result()
    path = write_result(str(tmp_path / "sub" / "mine.json"), r)
    assert path == str(tmp_path / "sub" / "mine.json")
    assert load_results(path) == [r]
    assert not [f for f in os.listdir(tmp_path / "sub") if ".tmp" in f]  # atomic, no leftovers


def test_rewriting_a_run_replaces_it_but_another_run_is_not_overwritten(tmp_path):
    first = write_result(tmp_path, st_result(system="CE+MSE"))
    r = st_result(system="CE+MSE")
    r["metrics"]["comet"] = 0.9
    assert write_result(tmp_path, r) == first
    assert load_results(first)[0]["metrics"]["comet"] == 0.9
    with pytest.raises(ValueError, match="already holds another run") as err:
        write_result(tmp_path, st_result(system="CE MSE"))  # same slug, other system
    assert "Pass an explicit .json path" in str(err.value)
    assert load_results(first)[0]["system"] == "CE+MSE"


def test_write_result_validates_before_writing(tmp_path):
    r = st_result()
    r["task"] = "translation"
    with pytest.raises(ValueError, match="^write_result: key 'task' is 'translation'"):
        write_result(tmp_path, r)
    assert os.listdir(tmp_path) == []


def test_load_results_searches_folders_and_skips_other_json(tmp_path, caplog):
    write_result(tmp_path / "b", st_result(seed=2))
    write_result(tmp_path / "a" / "deeper", st_result(seed=1))
    (tmp_path / "hyperparams.json").write_text('{"lr": 0.001}')
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "notes.txt").write_text("not json at all {")
    with caplog.at_level(logging.INFO, logger="speechmapper_plugin.evaluation.results"):
        results = load_results([str(tmp_path)])
    assert [r["seed"] for r in results] == [1, 2]  # sorted folder walk
    assert "2 result file(s) loaded, 2 other JSON file(s) ignored" in caplog.text
    # the same file reached twice (folder + explicit path) is read once
    again = load_results([tmp_path, tmp_path / "b"])
    assert len(again) == 2


def test_load_results_errors_name_the_file(tmp_path):
    bad = tmp_path / "corrupt.json"
    bad.write_text('{"schema": "speechmapper-result/1", "system": ')
    with pytest.raises(ValueError, match=r"corrupt\.json: not valid JSON"):
        load_results(tmp_path)
    bad.unlink()

    r = st_result()
    del r["metrics"]
    (tmp_path / "nometrics.json").write_text(json.dumps(r))
    with pytest.raises(ValueError) as err:
        load_results(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "nometrics.json") + ": missing key 'metrics'")
    (tmp_path / "nometrics.json").unlink()

    r = st_result()
    r["schema"] = "speechmapper-result/2"
    (tmp_path / "future.json").write_text(json.dumps(r))
    with pytest.raises(ValueError) as err:
        load_results(tmp_path)
    message = str(err.value)
    assert message.startswith(str(tmp_path / "future.json"))
    assert "key 'schema' is 'speechmapper-result/2'" in message
    assert "reads 'speechmapper-result/1'" in message

    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_results(str(tmp_path / "nowhere"))


def test_the_same_run_in_two_files_is_an_error(tmp_path):
    write_result(tmp_path / "x.json", st_result(seed=3))
    write_result(tmp_path / "y.json", st_result(seed=3))
    with pytest.raises(ValueError, match=r"y\.json and .*x\.json hold the same run"):
        load_results(tmp_path)


def test_asr_target_equal_to_source_is_the_same_run(tmp_path):
    def asr(target_lang):
        return make_result(
            "S", "LibriSpeech", "test-clean", "asr", {"wer": 3.0}, [], seed=1,
            target_lang=target_lang,
        )  # fmt: skip

    assert result_key(asr("en")) == result_key(asr(None))
    assert result_key(asr("fr")) != result_key(asr(None))
    write_result(tmp_path, asr(None))
    write_result(tmp_path, asr("en"))  # another file name ("en-en"), same run
    with pytest.raises(ValueError, match="hold the same run"):
        load_results(tmp_path)
