"""BERGEN's LLM-as-judge protocol (speechmapper_plugin.evaluation.bergen, the default of
evaluation.judge): the prompt as BERGEN renders it, its tokenization, the next-token p(Yes)
decision checked against ``generate``'s first-step logits, every item scored, the text mode,
and the spread over judges."""

import math

import pytest
import torch

from speechmapper_plugin.evaluation import bergen
from speechmapper_plugin.evaluation.judge import LLMJudge, judge_answers
from speechmapper_plugin.tiny.llm import build_tiny_llm

from .test_judge import ANSWERS, CONTEXTS, QUESTIONS, REFERENCES, force_reply

# "Yes" and "No" must be whole tokens of the tiny tokenizer, as in the real judges'.
CORPUS = [
    "Yes",
    "No",
    "Yes it is the same answer",
    "No it is not the same answer",
    "the cat sat on the mat in paris",
    "who sat on the mat the cat did",
    "the dog ran to the house",
    "is the answer the same",
] * 6


FAST = {"dtype": "float32", "device": "cpu"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_llm(tmp_path_factory.mktemp("bergen") / "tiny", CORPUS, initializer_range=0.1)


@pytest.fixture(scope="module")
def judge(folder):
    return LLMJudge(folder, batch_size=2, **FAST)


@pytest.fixture(scope="module")
def forced(folder, tmp_path_factory):
    """Judges forced to reply "Yes", "No" or "yes" (lower case)."""
    import shutil

    from transformers import AutoModelForCausalLM

    from speechmapper_plugin.models.tokens import load_tokenizer

    tokenizer = load_tokenizer(folder)
    root = tmp_path_factory.mktemp("bergen_forced")
    folders = {}
    for reply in ("Yes", "No", "yes"):
        target = root / reply
        shutil.copytree(folder, target)
        model = AutoModelForCausalLM.from_pretrained(folder)
        force_reply(model, tokenizer, reply).save_pretrained(target)
        folders[reply] = target
    return folders


def test_prompt_is_bergens(judge):
    text = judge.prompts(CONTEXTS[:1], QUESTIONS[:1], REFERENCES[:1], ANSWERS[:1])[0]
    system = "You are an evaluation tool. Answer with one of Yes, No."
    user = (
        "Here is a question, a golden answer and an AI-generated answer. Can you judge whether "
        "the AI-generated answer is correct according to the question and golden answer, "
        "simply answer with one of Yes, No.\n Question: where did the cat sit?. \nGolden "
        "answer: ['on the mat', 'the mat'] \n Generated answer: on the mat"
    )
    assert system in text and user in text
    assert "the cat sat on the mat in paris" not in text  # BERGEN's prompt has no context
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # The rendered text is tokenized again with the special tokens, as BERGEN does: the
    # template's own <|begin_of_text|> is followed by a second one.
    bos = judge.tokenizer.bos_token_id
    assert judge._encode(text)[:2] == [bos, bos]


def test_templates_without_system_role_get_the_one_message_variant(folder):
    judge = LLMJudge(folder, **FAST)
    judge.tokenizer.chat_template = (
        "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
        "{{ m['content'] }}<|eot_id|>{% endfor %}"
    )
    (text,) = judge.prompts(["c"], ["Who sat?"], ["the cat"], ["a cat"])
    assert text.count("<|start_header_id|>") == 1
    assert "Just answer by Yes, No." in text
    assert "\nQuestion: Who sat?.\nGolden answer: ['the cat']\nGenerated answer: a cat" in text
    judge.tokenizer.chat_template = None
    (text,) = judge.prompts(["c"], ["Who sat?"], ["the cat"], ["a cat"])
    assert (
        text == bergen.messages("Who sat?", ["the cat"], "a cat", with_system=False)[0]["content"]
    )


def test_decision_is_generates_first_step_p_yes(judge):
    """p(Yes) of one forward pass over the left-padded batch == BERGEN's
    ``generate(output_logits=True)`` first step, softmaxed over the No/Yes token ids."""
    from transformers import GenerationConfig

    texts = judge.prompts(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    scores = judge.yes_probabilities(texts)
    tokenizer = judge.tokenizer
    tokenizer.padding_side = "left"
    tokenizer.pad_token = tokenizer.bos_token
    inputs = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    assert len(set(inputs["attention_mask"].sum(-1).tolist())) > 1  # really padded
    config = GenerationConfig.from_model_config(judge.model.config)
    config.do_sample, config.max_new_tokens = False, 10
    config.output_logits, config.return_dict_in_generate = True, True
    output = judge.model.generate(**inputs, generation_config=config)
    no_id = tokenizer.encode("No", add_special_tokens=False)[0]
    yes_id = tokenizer.encode("Yes", add_special_tokens=False)[0]
    expected = torch.stack(output.logits)[0][:, [no_id, yes_id]].float().softmax(-1)[:, 1]
    assert scores == pytest.approx(expected.tolist(), abs=1e-5)
    assert len({round(s, 6) for s in scores}) > 1  # the scores depend on the item
    result = judge.judge(CONTEXTS, QUESTIONS, REFERENCES, ANSWERS)
    assert result["accuracy"] == pytest.approx(100 * sum(scores) / len(scores))
    assert result["invalid"] == 0 and result["num_items"] == 5  # every item, "" included


def test_forced_judges_and_the_spread_over_judges(forced):
    out = judge_answers(
        CONTEXTS, QUESTIONS, REFERENCES, ANSWERS, judges=[forced["Yes"], forced["No"]], **FAST
    )
    yes, no = (out["per_judge"][str(forced[k])]["accuracy"] for k in ("Yes", "No"))
    assert yes > 99.0 and no < 1.0
    assert out["accuracy"] == pytest.approx((yes + no) / 2)
    assert out["std"] == pytest.approx(abs(yes - no) / 2)  # population std over the judges
    assert out["protocol"] == "bergen" and out["invalid"] == 0


def test_text_mode_is_case_sensitive_and_drops_undecided_replies(forced):
    out = judge_answers(
        CONTEXTS[:2],
        QUESTIONS[:2],
        REFERENCES[:2],
        ANSWERS[:2],
        judges=[forced["Yes"], forced["yes"]],
        protocol="bergen-text",
        **FAST,
    )
    upper, lower = (out["per_judge"][str(forced[k])] for k in ("Yes", "yes"))
    assert upper["scores"] == [1.0, 1.0] and upper["accuracy"] == 100.0
    assert lower["scores"] == [None, None] and lower["invalid"] == 2  # "yes" is not "Yes"
    assert math.isnan(out["accuracy"]) and out["accuracy_all"] == 50.0
    assert bergen.text_verdict("Not sure") == 0.0  # BERGEN's substring rule


def test_a_tokenizer_that_cannot_tell_yes_from_no_is_refused(tmp_path):
    folder = build_tiny_llm(tmp_path / "lower", ["the cat sat on the mat"] * 4)
    with pytest.raises(ValueError, match="start with the same token"):
        LLMJudge(folder, **FAST)
