"""The 16 modality tags and the ``<TAG> answer`` reference format."""

import pytest

from medix_r1.modalities import MODALITY_TAGS, is_modality_tag, normalize_tag, split_tagged_answer


def test_the_sixteen_tags_of_the_reference():
    assert len(MODALITY_TAGS) == len(set(MODALITY_TAGS)) == 16
    for tag in ("<X_RAY>", "<CT_SCAN>", "<MRI_SCAN>", "<ULTRASOUND>", "<SPECT>", "<PET_SCAN>", "<OTHER>"):
        assert tag in MODALITY_TAGS
    assert all(t.startswith("<") and t.endswith(">") and t[1:-1].isupper() for t in MODALITY_TAGS)


@pytest.mark.parametrize("text, expected", [
    ("<CT_SCAN>", "<CT_SCAN>"),
    (" < ct_scan > ", "<CT_SCAN>"),
    ("<Mri_Scan>\n", "<MRI_SCAN>"),
    ("<LIVER>", None),
    ("CT_SCAN", None),           # brackets are required in completions
    ("<CT_SCAN><MRI_SCAN>", None),
    ("<CT SCAN>", None),
    ("", None),
    (None, None),
])
def test_normalize_tag(text, expected):
    assert normalize_tag(text) == expected
    assert is_modality_tag(text) is (expected is not None)


def test_brackets_optional_for_data_files():
    assert normalize_tag("mri_scan", brackets=False) == "<MRI_SCAN>"
    assert normalize_tag("<SPECT>", brackets=False) == "<SPECT>"
    assert normalize_tag("liver", brackets=False) is None


@pytest.mark.parametrize("solution, expected", [
    ("<CT_SCAN> Left kidney", ("<CT_SCAN>", "Left kidney")),
    ("<ct_scan>Left kidney ", ("<CT_SCAN>", "Left kidney")),
    ("< X_RAY >  Pneumothorax", ("<X_RAY>", "Pneumothorax")),
    ("<LIVER> answer", ("<LIVER>", "answer")),           # unknown tags are returned for callers to reject
    ("plain answer", (None, "plain answer")),
    ("<5 mm", (None, "<5 mm")),                           # not a tag: starts with a digit
    ("<CT_SCAN> a > b", ("<CT_SCAN>", "a > b")),          # only the first > ends the tag
])
def test_split_tagged_answer(solution, expected):
    assert split_tagged_answer(solution) == expected
