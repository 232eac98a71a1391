"""The one completion parser: well-formed, malformed and adversarial completions."""

import pytest

from medix_r1.prompts import clean_answer, parse_completion, squeeze_tag_whitespace

GOOD = "<CT_SCAN><thinking>A dense lesion in the right lobe.</thinking><answer>Liver</answer>"


def test_well_formed():
    p = parse_completion(GOOD)
    assert (p.modality, p.reasoning, p.answer) == ("<CT_SCAN>", "A dense lesion in the right lobe.", "Liver")
    assert p.well_formed and p.reason is None
    assert p.think_tag == "thinking"
    assert p.prefix == "<CT_SCAN>"
    assert p.final_answer == "Liver"


def test_think_variant_is_accepted():
    p = parse_completion("<MRI_SCAN><think>T2 bright</think><answer>Cyst</answer>")
    assert p.well_formed and p.think_tag == "think"
    assert (p.modality, p.reasoning, p.answer) == ("<MRI_SCAN>", "T2 bright", "Cyst")


def test_whitespace_between_blocks_and_inside_tags():
    p = parse_completion("  <CT_SCAN>\n< thinking >\n step one \n</ thinking >\n\n<answer >  Left kidney  < /answer>\n")
    assert p.well_formed, p.reason
    assert p.modality == "<CT_SCAN>"
    assert p.reasoning == "step one"
    assert p.answer == "Left kidney"


def test_case_of_tags_is_ignored():
    p = parse_completion("< ct_scan ><THINKING>x</Thinking><ANSWER>Yes</answer>")
    assert p.well_formed
    assert p.modality == "<CT_SCAN>"
    assert p.answer == "Yes"


@pytest.mark.parametrize("text, reason", [
    ("<CT_SCAN><answer>Liver</answer>", "no <thinking> block"),
    ("<CT_SCAN><thinking>r</thinking>", "no <answer> block"),
    ("<CT_SCAN><thinking>r</thinking> Liver", "no <answer> block"),
    ("<CT_SCAN><thinking>r<answer>Liver</answer>", "<thinking> is never closed"),
    ("<CT_SCAN><thinking>r</thinking><answer>Liver", "<answer> is never closed"),
    ("<CT_SCAN><thinking>a</thinking><thinking>b</thinking><answer>x</answer>", "more than one <thinking> block"),
    ("<CT_SCAN><thinking>a</thinking><answer>x</answer><answer>y</answer>", "more than one <answer> block"),
    ("<CT_SCAN><thinking>a</thinking><answer>x</answer> and more", "text after </answer>"),
    ("<CT_SCAN><thinking>a</thinking> so: <answer>x</answer>", "text between </thinking> and <answer>"),
    ("<CT_SCAN><think>a</thinking><answer>x</answer>", "<think> closed by </thinking>"),
    ("<answer>x</answer><thinking>a</thinking><answer>y</answer>", "<answer> before <thinking>"),
    ("</thinking><thinking>a</thinking><answer>y</answer>", "</thinking> before <thinking>"),
    ("<CT_SCAN><thinking>a</thinking><answer>x</thinking></answer>", "block tags out of order or unbalanced"),
])
def test_malformed_shapes_name_the_reason(text, reason):
    p = parse_completion(text)
    assert not p.well_formed
    assert p.reason == reason


def test_answer_before_thinking_is_not_well_formed():
    # Regression: the prefix used to be ignored, so this counted as well formed while `answer` was the
    # prefix's "x" - a policy could hide a second answer from the format check.
    p = parse_completion("<answer>x</answer><thinking>a</thinking><answer>y</answer>")
    assert p.answer == "x"
    assert not p.well_formed
    assert p.modality is None


def test_duplicate_answers_report_the_first():
    p = parse_completion("<X_RAY><thinking>a</thinking><answer>first</answer><answer>second</answer>")
    assert p.answer == "first"
    assert not p.well_formed


def test_tags_inside_the_answer():
    # A modality tag in the answer text is plain text, not structure.
    p = parse_completion("<CT_SCAN><thinking>a</thinking><answer>The <CT_SCAN> shows a mass</answer>")
    assert p.well_formed
    assert p.answer == "The <CT_SCAN> shows a mass"
    # A nested answer tag is structure: malformed, and the answer stops at the first close.
    p = parse_completion("<CT_SCAN><thinking>a</thinking><answer>a <answer>b</answer></answer>")
    assert not p.well_formed
    assert p.answer == "a <answer>b"


def test_text_after_answer_keeps_the_answer():
    p = parse_completion(GOOD + "\nI hope this helps!")
    assert not p.well_formed and p.reason == "text after </answer>"
    assert p.answer == "Liver"
    assert p.modality == "<CT_SCAN>"


def test_prefix_chatter_gives_no_modality_but_keeps_format():
    # The reference's format check starts at <thinking>; the modality check needs the prefix to be a tag.
    p = parse_completion("Sure! <CT_SCAN><thinking>a</thinking><answer>Liver</answer>")
    assert p.well_formed
    assert p.modality is None
    assert p.prefix == "Sure! <CT_SCAN>"


def test_unknown_or_multiple_tags_in_prefix():
    assert parse_completion("<LIVER><thinking>a</thinking><answer>x</answer>").modality is None
    assert parse_completion("<CT_SCAN><MRI_SCAN><thinking>a</thinking><answer>x</answer>").modality is None
    assert parse_completion("<spect>\n<thinking>a</thinking><answer>x</answer>").modality == "<SPECT>"


def test_unicode_survives():
    text = "<MRI_SCAN><thinking>Signal hyperintense en T2 — 肺水肿?</thinking><answer>Œdème pulmonaire 🫁</answer>"
    p = parse_completion(text)
    assert p.well_formed
    assert p.answer == "Œdème pulmonaire 🫁"
    assert p.reasoning.endswith("肺水肿?")


def test_100kb_completions():
    long_reasoning = "word " * 20_000
    p = parse_completion(f"<CT_SCAN><thinking>{long_reasoning}</thinking><answer>Liver</answer>")
    assert len(p.text) > 100_000
    assert p.well_formed and p.answer == "Liver" and p.reasoning == long_reasoning.strip()
    # Adversarial: 100 KB of unbalanced tags must still parse (a linear scan), and be malformed.
    p = parse_completion("<thinking>" + "<answer>" * 12_500 + "x")
    assert len(p.text) > 100_000
    assert not p.well_formed and p.answer is None and p.reasoning is None


@pytest.mark.parametrize("text", ["", "   \n\t", None])
def test_empty_and_none(text):
    p = parse_completion(text)
    assert not p.well_formed and p.reason == "empty completion"
    assert p.answer is None and p.reasoning is None and p.modality is None
    assert p.final_answer == ""


def test_non_string_is_a_type_error():
    with pytest.raises(TypeError):
        parse_completion(42)  # type: ignore[arg-type]


def test_final_answer_fallbacks():
    assert parse_completion(GOOD).final_answer == "Liver"
    # No answer block: the text after the last closing reasoning tag (what the eval kit does).
    p = parse_completion("<think>one</think> draft <think>two</think>  Right lung  ")
    assert p.answer is None and p.final_answer == "Right lung"
    # Neither: the whole completion.
    assert parse_completion("  Just an answer.  ").final_answer == "Just an answer."
    # An empty answer block is an answer (empty), not a reason to fall back.
    assert parse_completion("<thinking>a</thinking><answer> </answer>").final_answer == ""


def test_parse_is_pure_and_the_result_frozen():
    a, b = parse_completion(GOOD), parse_completion(GOOD)
    assert a == b
    with pytest.raises(AttributeError):
        a.answer = "other"  # type: ignore[misc]


def test_clean_answer_and_squeeze():
    assert clean_answer("  The left lung. ") == "The left lung"
    assert clean_answer("...Yes...") == "Yes"
    assert clean_answer(None) == ""
    assert squeeze_tag_whitespace("< answer > a / b </ answer >") == "<answer>a/b</answer>"
