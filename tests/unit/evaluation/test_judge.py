"""Tests of the SQA LLM-as-judge: the freeform protocol (verdict parsing, prompts, forced
judges, averaging) here; BERGEN's protocol, the default, in test_bergen.py."""

import logging
import math
import shutil

import pytest
import torch

from speechmapper_plugin.evaluation import judge as judge_module
from speechmapper_plugin.evaluation.judge import (
    JUDGE_PROMPT,
    REFERENCE_SEPARATOR,
    LLMJudge,
    check_prompt,
    format_references,
    judge_answers,
    parse_verdict,
)
from speechmapper_plugin.tiny.llm import EOT_TOKEN, build_tiny_llm

CORPUS = [
    "yes it is the same answer",
    "no it is not the same answer",
    "maybe the answer is yes or no",
    "the cat sat on the mat in paris",
    "who sat on the mat the cat did",
    "the dog ran to the house yes",
    "no the dog did not run",
    "is the answer the same yes or no",
] * 4


CONTEXTS = [
    "the cat sat on the mat in paris",
    "the dog ran to the house",
    "the cat sat on the mat",
    "the dog did not run to the house in paris",
    "the mat is in the house",
]


QUESTIONS = ["where did the cat sit?", "where did the dog run?", "who sat?", "did it run?", "?"]


REFERENCES = [["on the mat", "the mat"], "to the house", "the cat", ["no"], "in the house"]


ANSWERS = ["on the mat", "the house", "", "yes it did", "the mat is in the house in paris"]


FAST = {"dtype": "float32", "device": "cpu", "protocol": "freeform"}


@pytest.fixture(scope="module")
def base_folder(tmp_path_factory):
    # Larger random weights than the default: the replies then depend on the prompt.
    folder = tmp_path_factory.mktemp("judge") / "tiny"
    return build_tiny_llm(folder, CORPUS, initializer_range=0.1)


def force_reply(model, tokenizer, reply):
    """Turns the tiny Llama into a bigram model that always answers ``reply``, then stops.

    Attention and MLP outputs are zeroed, so the last hidden state is the (normalized)
    embedding of the current token; every token is embedded on axis 0, the i-th reply token
    on axis i + 1, and the output layer maps axis 0 to the first reply token, axis i + 1 to
    the next one and the last axis to the end-of-turn token.
    """
    ids = tokenizer(reply, add_special_tokens=False)["input_ids"]
    assert len(set(ids)) == len(ids), f"reply {reply!r} must have distinct tokens: {ids}"
    eot = tokenizer.convert_tokens_to_ids(EOT_TOKEN)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = model.get_input_embeddings().weight
        head = model.get_output_embeddings().weight
        embed.zero_()
        embed[:, 0] = 1.0
        head.zero_()
        head[ids[0], 0] = 10.0
        for position, token in enumerate(ids):
            embed[token] = 0.0
            embed[token, position + 1] = 1.0
            following = ids[position + 1] if position + 1 < len(ids) else eot
            head[following, position + 1] = 10.0
    return model


@pytest.fixture(scope="module")
def forced(base_folder, tmp_path_factory):
    """Local judge folders forced to reply "yes", "no" or the undecided "yes or no"."""
    from transformers import AutoModelForCausalLM

    from speechmapper_plugin.models.tokens import load_tokenizer

    tokenizer = load_tokenizer(base_folder)
    root = tmp_path_factory.mktemp("forced")
    folders = {}
    for name, reply in (("yes", "yes"), ("no", "no"), ("invalid", "yes or no")):
        folder = root / name
        shutil.copytree(base_folder, folder)
        model = AutoModelForCausalLM.from_pretrained(base_folder)
        force_reply(model, tokenizer, reply).save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.fixture(scope="module")
def random_judge(base_folder):
    return LLMJudge(base_folder, batch_size=4, max_new_tokens=5, **FAST)


@pytest.mark.parametrize(
    "text, verdict",
    [
        ("yes", True),
        ("Yes", True),
        ("YES.", True),
        ("  yes\n", True),
        ("Yes, because both answers name the mat.", True),
        ("Yes!", True),
        ("**Yes**", True),
        ("**Yes**, the candidate is right", True),
        ("# Yes", True),
        ("> yes", True),
        ("- yes", True),
        ("`yes`", True),
        ('"Yes"', True),
        ("Answer: yes", True),
        ("**Verdict:** Yes", True),
        ("Yes\n\nExplanation: same place.", True),
        ("Yes, no doubt about it", True),
        ("no", False),
        ("No", False),
        ("NO!", False),
        ("**No**", False),
        ("No, the reference says the house.", False),
        ("  no.\n", False),
        ("Answer - no", False),
        ("'no'", False),
        ("maybe", None),
        ("", None),
        ("   ", None),
        (None, None),
        ("yes/no", None),
        ("Yes / No", None),
        ("yes or no", None),
        ("No or yes?", None),
        ("**Yes** and **no**", None),
        ("The answer is yes", None),
        ("yesterday", None),
        ("nothing", None),
        ("Not equivalent", None),
        ("Nope", None),
        ("oui", None),
        ("**", None),
    ],
)
def test_parse_verdict(text, verdict):
    assert parse_verdict(text) is verdict


def test_format_references_joins_several_answers():
    assert format_references(["on the mat", " the mat "]) == "on the mat | the mat"
    assert REFERENCE_SEPARATOR in format_references(("a", "b"))
    assert format_references("  to the house ") == "to the house"
    with pytest.raises(ValueError, match="at least one str"):
        format_references([])
    with pytest.raises(TypeError, match="str or a list of str, got int"):
        format_references(3)


def test_check_prompt_errors():
    assert check_prompt(JUDGE_PROMPT) is JUDGE_PROMPT
    with pytest.raises(ValueError, match=r"misses the field\(s\) \['reference'\]"):
        check_prompt("{context} {question} {answer}")
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['language'\]"):
        check_prompt("{context} {question} {reference} {answer} {language}")
    with pytest.raises(ValueError, match="not a valid format string"):
        check_prompt("{context} {question} {reference} {answer} {")


def test_prompts_fill_template_and_chat_template(random_judge):
    texts = random_judge.prompts(CONTEXTS[:2], QUESTIONS[:2], REFERENCES[:2], ANSWERS[:2])
    assert len(texts) == 2
    first = texts[0]
    message = JUDGE_PROMPT.format(
        context=CONTEXTS[0],
        question=QUESTIONS[0],
        reference="on the mat | the mat",
        answer="on the mat",
    )
    assert "Reference answer(s): on the mat | the mat" in first
    assert "Candidate answer: on the mat" in first
    # The message is a user turn of the chat template, followed by the assistant header.
    assert first.startswith("<|begin_of_text|>")
    assert "<|start_header_id|>user<|end_header_id|>\n\n" + message.strip() in first
    assert first.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_custom_prompt_and_raw_fallback_without_chat_template(base_folder, caplog):
    template = "C={context} Q={question} R={reference} A={answer} {{yes/no}}"
    judge = LLMJudge(base_folder, prompt=template, max_new_tokens=1, **FAST)
    texts = judge.prompts(["ctx"], ["q?"], [["r1", "r2"]], [""])
    assert "C=ctx Q=q? R=r1 | r2 A= {yes/no}" in texts[0]
    judge.tokenizer.chat_template = None
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin.evaluation.judge"):
        texts = judge.prompts(["ctx"], ["q?"], [["r1", "r2"]], ["an answer"])
    assert texts == ["C=ctx Q=q? R=r1 | r2 A=an answer {yes/no}"]
    assert "no chat template" in caplog.text
    # The raw prompt still starts with the bos token the model was trained with.
    assert judge._encode(texts[0])[0] == judge.tokenizer.bos_token_id
    assert len(judge.judge(["ctx"], ["q?"], ["r"], ["a"])["raw"]) == 1
    judge.close()
    assert judge.model is None


def test_bad_prompt_fails_before_loading():
    with pytest.raises(ValueError, match="misses the field"):
        LLMJudge("/nonexistent/judge", prompt="{question} {answer}", protocol="freeform")
    with pytest.raises(ValueError, match="uses BERGEN's prompt"):
        LLMJudge("/nonexistent/judge", prompt=JUDGE_PROMPT)
    with pytest.raises(ValueError, match="Unknown judge protocol 'bergen2'"):
        LLMJudge("/nonexistent/judge", protocol="bergen2")


def test_length_mismatch_names_the_counts(random_judge):
    with pytest.raises(ValueError, match="got 2 contexts, 2 questions, 1 references, 2 answers"):
        random_judge.judge(CONTEXTS[:2], QUESTIONS[:2], REFERENCES[:1], ANSWERS[:2])
    with pytest.raises(ValueError, match="got 5 contexts, 5 questions, 5 references, 4 answers"):
        judge_answers(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS[:4], judges=["unused/judge"])


def test_bad_items(random_judge):
    with pytest.raises(ValueError, match="Nothing to judge"):
        random_judge.judge([], [], [], [])
    with pytest.raises(TypeError, match=r"answers\[1\] must be a str .* got NoneType"):
        random_judge.judge(["c", "c"], ["q", "q"], ["r", "r"], ["a", None])
    with pytest.raises(ValueError, match="at least one str"):
        judge_answers(["c"], ["q"], [[]], ["a"], judges=["unused/judge"])


def test_judge_list_errors():
    with pytest.raises(ValueError, match="at least one judge"):
        judge_answers(["c"], ["q"], ["r"], ["a"], judges=[])
    with pytest.raises(ValueError, match=r"more than once: \['a/judge'\]"):
        judge_answers(["c"], ["q"], ["r"], ["a"], judges=["a/judge", "b/judge", "a/judge"])


def test_missing_hub_judge_offline_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError) as error:
        LLMJudge("speechmapper-tests/no-such-judge", cache_dir=tmp_path, **FAST)
    message = str(error.value)
    assert "'speechmapper-tests/no-such-judge'" in message
    assert "not in the local hub cache" in message
    assert "local folder" in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LLMJudge("./no/such/judge/folder", **FAST)


def test_missing_judge_fails_before_any_judge_runs(forced, tmp_path, monkeypatch):
    def must_not_load(*args, **kwargs):
        raise AssertionError("a judge was loaded before all judges were found")

    monkeypatch.setattr(judge_module, "LLMJudge", must_not_load)
    with pytest.raises(OSError, match="speechmapper-tests/no-such-judge"):
        judge_answers(
            ["c"],
            ["q"],
            ["r"],
            ["a"],
            judges=[str(forced["yes"]), "speechmapper-tests/no-such-judge"],
            cache_dir=tmp_path,
        )


def test_forced_yes_judge_accepts_everything_including_empty_answers(forced):
    judge = LLMJudge(forced["yes"], batch_size=2, **FAST)
    result = judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    assert result["raw"] == ["yes"] * 5  # stopped on the end-of-turn token
    assert result["verdicts"] == [True] * 5
    assert result["accuracy"] == 100.0 and result["accuracy_all"] == 100.0
    assert result["invalid"] == 0 and result["num_items"] == 5  # the empty answer is judged
    judge.close()


def test_forced_no_judge(forced):
    judge = LLMJudge(forced["no"], **FAST)
    result = judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    assert result["raw"] == ["no"] * 5
    assert result["verdicts"] == [False] * 5
    assert result["accuracy"] == 0.0 and result["accuracy_all"] == 0.0
    assert result["invalid"] == 0


def test_undecided_replies_are_counted_invalid(forced, caplog):
    judge = LLMJudge(forced["invalid"], **FAST)
    with caplog.at_level(logging.WARNING, logger="speechmapper_plugin.evaluation.judge"):
        result = judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    assert result["raw"] == ["yes or no"] * 5
    assert result["verdicts"] == [None] * 5
    assert result["invalid"] == 5 and result["valid"] == 0
    assert math.isnan(result["accuracy"])
    assert result["accuracy_all"] == 0.0
    assert "5 of 5 replies are neither yes nor no" in caplog.text


def test_max_new_tokens_truncates_the_reply(forced):
    judge = LLMJudge(forced["invalid"], max_new_tokens=1, **FAST)
    result = judge.judge(CONTEXTS[:2], QUESTIONS[:2], REFERENCES[:2], ANSWERS[:2])
    assert result["raw"] == ["yes", "yes"]
    assert result["verdicts"] == [True, True]


def test_two_judges_are_averaged(forced):
    out = judge_answers(
        CONTEXTS,
        QUESTIONS,
        REFERENCES,
        ANSWERS,
        judges=[forced["yes"], forced["no"]],
        batch_size=3,
        **FAST,
    )
    assert out["accuracy"] == 50.0 and out["accuracy_all"] == 50.0
    assert out["std"] == 50.0
    assert out["invalid"] == 0 and out["num_items"] == 5
    assert list(out["per_judge"]) == [str(forced["yes"]), str(forced["no"])]
    yes = out["per_judge"][str(forced["yes"])]
    assert yes["accuracy"] == 100.0 and yes["verdicts"] == [True] * 5
    assert "raw" not in yes


def test_invalid_judge_in_average(forced):
    out = judge_answers(
        CONTEXTS[:2],
        QUESTIONS[:2],
        REFERENCES[:2],
        ANSWERS[:2],
        judges=[str(forced["yes"]), str(forced["invalid"])],
        **FAST,
    )
    assert out["invalid"] == 2
    assert math.isnan(out["accuracy"])  # one judge gave no valid verdict: no silent average
    assert out["accuracy_all"] == 50.0  # 100 % and 0 % (invalid = no)


def test_batched_equals_one_by_one(random_judge):
    texts = random_judge.prompts(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    lengths = {len(random_judge._encode(text)) for text in texts}
    assert len(lengths) > 1  # the batch really needs padding
    random_judge.batch_size = 4
    batched = random_judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    random_judge.batch_size = 1
    single = random_judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    random_judge.batch_size = 4
    assert batched["raw"] == single["raw"]
    assert batched["verdicts"] == single["verdicts"]
    assert len(set(batched["raw"])) > 1  # the random judge's replies depend on the input


def test_greedy_ignores_model_sampling_defaults(random_judge):
    reference = random_judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)["raw"]
    config = random_judge.model.generation_config
    config.do_sample, config.temperature, config.top_k = True, 50.0, 0
    try:
        for _ in range(2):
            assert random_judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)["raw"] == reference
    finally:
        config.do_sample, config.temperature, config.top_k = False, 1.0, 50


def test_pad_id_falls_back_to_eos(random_judge):
    assert random_judge.tokenizer.pad_token is None
    assert random_judge.pad_id == random_judge.tokenizer.eos_token_id
    assert random_judge.tokenizer.convert_tokens_to_ids(EOT_TOKEN) in random_judge.stop_ids
