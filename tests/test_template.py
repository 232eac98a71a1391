"""The versioned MediX prompt template: text-only, one-image, multi-image, MCQ, few-shot."""

import pytest

from medix_r1.data import Sample, load_samples
from medix_r1.modalities import MODALITY_TAGS
from medix_r1.prompts import DEMO_FEW_SHOT, TEMPLATES, PromptTemplate, get_template, parse_completion
from medix_r1.registry import UnknownNameError


def _sample(**kw):
    base = {"id": "s1", "question": "Which organ is enlarged?", "answer": "Spleen"}
    return Sample(**{**base, **kw})


def _types(message):
    return [c["type"] for c in message["content"]]


def test_text_only_sample():
    msgs = PromptTemplate().render(_sample())
    assert [m["role"] for m in msgs] == ["user"]
    assert _types(msgs[0]) == ["text", "text"]
    instruction = msgs[0]["content"][0]["text"]
    assert "<thinking>" in instruction and "<answer>" in instruction
    assert "<CT_SCAN>" not in instruction  # no modality tag is asked of a text-only question
    assert instruction.endswith("Question:")
    assert msgs[0]["content"][1]["text"] == "Which organ is enlarged?"


def test_one_image_sample_asks_for_a_tag_first():
    msgs = PromptTemplate().render(_sample(images=["a.png"], modality="<CT_SCAN>"))
    assert _types(msgs[-1]) == ["text", "image", "text"]
    instruction = msgs[-1]["content"][0]["text"]
    for tag in MODALITY_TAGS:
        assert tag in instruction
    assert instruction.index("tag") < instruction.index("<thinking>") < instruction.index("<answer>")


def test_multi_image_sample_keeps_image_order_and_count():
    msgs = PromptTemplate().render(_sample(images=["a.png", "b.png", "c.png"], modality="<MRI_SCAN>"))
    assert _types(msgs[-1]) == ["text", "image", "image", "image", "text"]
    plain = PromptTemplate().render_plain(_sample(images=["a.png", "b.png"], modality="<MRI_SCAN>"))
    assert plain[-1]["content"].endswith("Question:\n<image> <image> Which organ is enlarged?")


def test_render_plain_is_strings_only():
    plain = PromptTemplate().render_plain(_sample(images=["a.png"], modality="<CT_SCAN>"))
    assert all(isinstance(m["content"], str) for m in plain)
    assert plain[-1]["content"].endswith("Question:\n<image> Which organ is enlarged?")


def test_mcq_choices_are_listed_in_order():
    s = _sample(options={"A": "Liver", "B": "Spleen", "C": "Kidney"}, answer="Spleen", answer_type="mcq")
    text = PromptTemplate().render(s)[-1]["content"][-1]["text"]
    assert text == "Which organ is enlarged?\nChoices:\nA. Liver\nB. Spleen\nC. Kidney"
    # options given as a list become lettered
    s = _sample(options=["Liver", "Spleen"], answer="Spleen", answer_type="mcq")
    assert PromptTemplate().question_text(s).endswith("A. Liver\nB. Spleen")


def test_few_shot_turns_come_first_and_are_well_formed():
    t = get_template("medix-3shot")
    msgs = t.render(_sample(images=["a.png"], modality="<CT_SCAN>"))
    assert [m["role"] for m in msgs] == ["user", "assistant"] * len(DEMO_FEW_SHOT) + ["user"]
    for ex, reply in zip(DEMO_FEW_SHOT, msgs[1::2]):
        assert reply["content"][0]["text"] == ex.completion
        assert parse_completion(ex.completion).well_formed
    assert msgs[0]["content"][0]["text"].endswith(DEMO_FEW_SHOT[0].question)


def test_few_shot_tags_are_not_in_the_bundled_answer_key():
    # offline.md: a policy that copies the examples' tag must not score the modality reward.
    shot_tags = {parse_completion(ex.completion).modality for ex in DEMO_FEW_SHOT}
    data_tags = {s.modality for s in load_samples().samples if s.modality}
    assert shot_tags and data_tags and not (shot_tags & data_tags)


def test_think_tag_and_system_prompt_are_configurable():
    t = get_template("medix-think")
    text = t.render(_sample(images=["a.png"]))[-1]["content"][0]["text"]
    assert "<think>" in text and "<thinking>" not in text
    msgs = PromptTemplate().with_overrides(system_prompt="You are a radiologist.").render(_sample())
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]}


def test_templates_have_distinct_versions():
    versions = [t.version for t in TEMPLATES.values()]
    assert len(set(versions)) == len(versions)
    assert all(v for v in versions)
    changed = PromptTemplate().with_overrides(instruction="Answer: {tags} {think}", version="custom-v2")
    assert changed.version == "custom-v2" and PromptTemplate().version == "medix-v1"


def test_unknown_template_name_suggests_the_nearest():
    with pytest.raises(UnknownNameError, match="medix-3shot"):
        get_template("medix-3shots")


def test_only_the_first_worked_example_repeats_the_instruction_in_the_demo_template():
    # The demo policy's prompt length sets its step time: the 16-tag instruction must appear in the first
    # example and in the real question, not in every example.
    from medix_r1.data.schema import Sample
    from medix_r1.prompts import get_template

    sample = Sample(id="x", question="Which organ?", answer="Liver", images=["a.png"], modality="<CT_SCAN>")
    msgs = get_template("medix-3shot").render_plain(sample)
    users = [m["content"] for m in msgs if m["role"] == "user"]
    assert len(users) == 4
    with_tags = ["<FUNDUS_PHOTOGRAPHY>" in u for u in users]
    assert with_tags == [True, False, False, True]
    full = get_template("medix-3shot").with_overrides(examples_repeat_instruction=True).render_plain(sample)
    assert all("<FUNDUS_PHOTOGRAPHY>" in m["content"] for m in full if m["role"] == "user")
