"""Tests of speechmapper_plugin.inference.model_card: the README.md of an export, read back by
huggingface_hub's own parser (ModelCard.load -> ModelCardData, model-index -> EvalResult)."""

import os

import pytest
from huggingface_hub import ModelCard

from speechmapper_plugin.evaluation.results import make_result, write_result
from speechmapper_plugin.inference.export import export_model

from .test_pretrained import build_tiny_setup


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_setup(tmp_path_factory.mktemp("card"))


@pytest.fixture(scope="module")
def card_folder(tiny):
    results = os.path.join(tiny["root"], "eval")
    outputs = [{"id": "a", "hypothesis": "x", "reference": "x"}]
    for seed, wer in ((1, 3.0), (2, 5.0)):
        write_result(
            results,
            make_result(
                "my system", "LibriSpeech", "test-clean", "asr", {"wer": wer}, outputs, seed=seed
            ),
        )
    write_result(
        results,
        make_result(
            "my system",
            "CoVoST2",
            "test",
            "st",
            {"bleu": 20.0},
            outputs,
            target_lang="de",
            seed=1,
        ),
    )
    return export_model(
        tiny["stage1"],
        os.path.join(tiny["root"], "published"),
        overrides={"llm_source": "org/tiny-llm"},
        results=[results],
        model_name="tiny-speechmapper",
        repo_id="me/tiny-speechmapper",
        license="llama3.1",
    )


def test_model_card_parses_with_huggingface_hub(card_folder):
    card = ModelCard.load(os.path.join(card_folder, "README.md"))
    data = card.data
    assert data.library_name == "speechbrain"
    assert data.base_model == "org/tiny-llm"
    assert data.license == "llama3.1"
    assert data.model_name == "tiny-speechmapper"
    assert set(data.datasets) == {"librispeech_asr", "facebook/covost2"}
    assert set(data.language) == {"en", "de"}
    evals = {(e.task_type, e.dataset_type, e.metric_type): e for e in data.eval_results}
    wer = evals[("automatic-speech-recognition", "librispeech_asr", "wer")]
    assert wer.metric_value == 4.0 and "2 seeds" in wer.metric_name
    assert evals[("translation", "facebook/covost2", "bleu")].metric_value == 20.0
    text = card.text
    assert 'SpeechMapperLLM.from_hparams(source="me/tiny-speechmapper"' in text
    assert "SpeechMapper: Speech-to-text Embedding Projector for LLMs" in text  # citation


def test_card_of_a_local_llm_has_no_base_model(tiny, tmp_path):
    out = export_model(tiny["stage2"], str(tmp_path / "pub"))
    card = ModelCard.load(os.path.join(out, "README.md"))
    assert card.data.base_model is None and card.data.eval_results is None
    assert card.data.library_name == "speechbrain"


def test_results_of_several_systems_need_a_choice(tiny, tmp_path):
    results = str(tmp_path / "eval")
    for system in ("A", "B"):
        write_result(
            results,
            make_result(system, "LibriSpeech", "test-clean", "asr", {"wer": 1.0}, []),
        )
    with pytest.raises(ValueError, match="choose it with system"):
        export_model(tiny["stage1"], str(tmp_path / "x"), results=[results])
    out = export_model(tiny["stage1"], str(tmp_path / "y"), results=[results], system="B")
    assert len(ModelCard.load(os.path.join(out, "README.md")).data.eval_results) == 1
