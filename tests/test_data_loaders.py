"""Loaders: MediX layout (JSONL, Parquet, save_to_disk), canonical JSONL, errors, validation, bundled data."""

import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from medix_r1.data import BUNDLED_DIR, DataError, Sample, SampleError, load_samples, validate
from medix_r1.data.loaders import iter_rows, row_to_sample


def _png(path: Path, color=(200, 30, 30), size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def _png_bytes(color=(0, 0, 255)) -> bytes:
    import io

    buf = io.BytesIO()
    Image.new("L", (9, 7), 128).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def _write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


MEDIX_ROWS = [
    {"id": "m1", "image": ["img/a.png"], "source": "demo", "problem": "<image>\nWhich organ is shown?",
     "solution": "<CT_SCAN> Liver"},
    {"id": "m2", "image": ["img/a.png", "img/b.png"], "source": "demo", "problem": "Is there a fracture?",
     "solution": "<x_ray> No"},
    {"id": "m3", "image": [], "source": "text", "problem": "Antidote for heparin?", "solution": "Protamine"},
]


# ------------------------------------------------------------------------------------------------ MediX
def test_medix_jsonl_with_relative_images(tmp_path):
    data = tmp_path / "sub"
    _png(data / "img/a.png")
    _png(data / "img/b.png", color=(0, 255, 0))
    path = _write_jsonl(data / "train.jsonl", MEDIX_ROWS)
    res = load_samples(path)
    assert res.skipped == 0
    m1, m2, m3 = res.samples
    assert (m1.id, m1.question, m1.answer, m1.modality, m1.answer_type) == (
        "m1", "Which organ is shown?", "Liver", "<CT_SCAN>", "open")
    assert m1.metadata["raw_problem"].startswith("<image>")
    assert m2.modality == "<X_RAY>" and m2.answer == "No" and m2.answer_type == "closed"
    assert m3.modality is None and not m3.has_image and m3.answer == "Protamine"
    # relative to the data file, not the working directory; still lazy (a path, not a decoded image)
    assert m2.images == [data / "img/a.png", data / "img/b.png"]
    imgs = m2.load_images()
    assert [im.mode for im in imgs] == ["RGB", "RGB"] and imgs[1].getpixel((0, 0)) == (0, 255, 0)


def _medix_dataset(image_bytes):
    import datasets

    feats = datasets.Features({"id": datasets.Value("string"), "image": datasets.List(datasets.Image()),
                               "source": datasets.Value("string"), "problem": datasets.Value("string"),
                               "solution": datasets.Value("string")})
    return datasets.Dataset.from_dict({
        "id": ["p1", "p2"],
        "image": [[{"bytes": image_bytes, "path": None}], []],
        "source": ["s", "s"],
        "problem": ["<image> What is shown?", "A text question?"],
        "solution": ["<MRI_SCAN> A cyst", "Yes"],
    }, features=feats)


def test_medix_parquet(tmp_path):
    path = tmp_path / "data.parquet"
    _medix_dataset(_png_bytes()).to_parquet(str(path))
    res = load_samples(path)
    p1, p2 = res.samples
    assert (p1.id, p1.question, p1.answer, p1.modality) == ("p1", "What is shown?", "A cyst", "<MRI_SCAN>")
    assert type(p1.images[0]).__name__ == "TableImage"  # a reference to the row: no bytes until asked for
    assert p1.load_images()[0].size == (9, 7)
    assert p2.answer_type == "closed" and not p2.has_image


def test_medix_save_to_disk_dataset_and_datasetdict(tmp_path):
    import datasets

    ds = _medix_dataset(_png_bytes())
    ds.save_to_disk(str(tmp_path / "one"))
    assert [s.id for s in load_samples(tmp_path / "one").samples] == ["p1", "p2"]

    datasets.DatasetDict({"train": ds, "test": ds.rename_column("id", "x").add_column("id", ["t1", "t2"])
                          .remove_columns("x")}).save_to_disk(str(tmp_path / "dict"))
    both = load_samples(tmp_path / "dict").samples
    assert {(s.id, s.split) for s in both} == {("p1", "train"), ("p2", "train"), ("t1", "test"), ("t2", "test")}
    only_test = load_samples(tmp_path / "dict", split="test").samples
    assert [s.id for s in only_test] == ["t1", "t2"]


def test_table_with_a_corrupt_image_is_a_row_issue_not_a_crash(tmp_path):
    path = tmp_path / "bad.parquet"
    _medix_dataset(b"not a png at all").to_parquet(str(path))
    ok, issues = validate(path)
    assert ok == 1
    assert len(issues) == 1
    assert (issues[0].row, issues[0].id, issues[0].field) == (0, "p1", "images[0]")
    assert "cannot decode" in issues[0].message


# ------------------------------------------------------------------------------------------------ canonical
def test_canonical_jsonl(tmp_path):
    _png(tmp_path / "x.png")
    path = _write_jsonl(tmp_path / "rows.jsonl", [
        {"id": 7, "question": "Plane?", "answer": "Axial", "image": "x.png", "modality": "CT_SCAN",
         "source": "s", "metadata": {"k": 1}},
        {"id": "q2", "question": "Which nerve?", "answer": "B", "answer_type": "mcq",
         "options": {"A": "Ulnar", "B": "Median"}},
        {"id": "q3", "question": "Which nerve?", "answer": "Median", "options": ["Ulnar", "Median"]},
        {"id": "q4", "question": "Is it?", "answer": "yes"},
    ])
    s1, s2, s3, s4 = load_samples(path).samples
    assert s1.id == "7" and s1.images == [tmp_path / "x.png"] and s1.modality == "<CT_SCAN>"
    assert s1.metadata == {"k": 1} and s1.answer_type == "open"
    # an MCQ answer given as a letter becomes the option text (the reference protocol) and keeps the letter
    assert (s2.answer, s2.metadata["answer_letter"]) == ("Median", "B")
    assert s3.answer_type == "mcq" and s3.options == {"A": "Ulnar", "B": "Median"}
    assert s3.metadata["answer_letter"] == "B"
    assert s4.answer_type == "closed"


def test_row_to_sample_names_the_bad_field():
    with pytest.raises(SampleError) as err:
        row_to_sample({"id": "a", "question": "q"})
    assert err.value.field == "answer"
    with pytest.raises(SampleError) as err:
        row_to_sample({"id": "a", "question": "q", "answer": "Z", "options": {"A": "x", "B": "y"}})
    assert err.value.field == "answer"
    with pytest.raises(SampleError) as err:
        row_to_sample({"id": "a", "problem": "q", "solution": "<LIVER> x"})
    assert err.value.field == "modality"
    with pytest.raises(SampleError) as err:
        row_to_sample({"question": "q", "answer": "a"})
    assert err.value.field == "id"
    with pytest.raises(SampleError) as err:
        row_to_sample({"id": "a", "question": "q", "answer": "a", "answer_type": "free"})
    assert err.value.field == "answer_type"


def test_json_array_file(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"id": "a", "question": "q?", "answer": "x"}, "oops"]))
    ok, issues = validate(path)
    assert ok == 1 and [(i.row, i.message) for i in issues] == [(1, "a row must be a JSON object")]


# ------------------------------------------------------------------------------------------------ errors
BROKEN = [
    {"id": "good1", "question": "q?", "answer": "a", "image": "ok.png", "modality": "<CT_SCAN>"},  # line 1
    '{"id": "bad-json", "question": "q?", "answer": ',                                           # line 2
    {"id": "no-answer", "question": "q?"},                                                         # line 3
    {"id": "bad-tag", "question": "q?", "answer": "a", "modality": "<LIVER>"},                     # line 4
    {"id": "no-image", "question": "q?", "answer": "a", "image": "missing.png"},                   # line 5
    {"id": "bad-image", "question": "q?", "answer": "a", "image": "corrupt.png"},                  # line 6
    {"id": "good1", "question": "again?", "answer": "b"},                                          # line 7
    {"id": "good2", "problem": "q?", "solution": "<MRI_SCAN> fine"},                               # line 8
]


@pytest.fixture
def broken_file(tmp_path):
    _png(tmp_path / "ok.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return _write_jsonl(tmp_path / "broken.jsonl", BROKEN)


EXPECTED_ISSUES = [  # (line, id, field)
    (2, None, None),
    (3, "no-answer", "answer"),
    (4, "bad-tag", "modality"),
    (5, "no-image", "images[0]"),
    (6, "bad-image", "images[0]"),
    (7, "good1", "id"),
]


def test_validate_names_every_bad_row(broken_file):
    ok, issues = validate(broken_file)
    assert ok == 2
    assert [(i.row, i.id, i.field) for i in issues] == EXPECTED_ISSUES
    assert all(i.file == str(broken_file) for i in issues)
    text = [str(i) for i in issues]
    assert text[0].startswith(f"{broken_file}:2") and "malformed JSON" in text[0]
    assert "unknown modality tag '<LIVER>'" in text[2]
    assert "not found" in text[3] and "cannot decode" in text[4]
    assert "duplicate id (first seen at" in text[5] and ":1)" in text[5]


def test_on_error_raise_stops_at_the_first_bad_row(broken_file):
    with pytest.raises(DataError) as err:
        load_samples(broken_file, check_images=True)
    assert err.value.issue.row == 2
    assert str(broken_file) in str(err.value)


def test_on_error_skip_counts_and_logs(broken_file, caplog):
    with caplog.at_level(logging.WARNING, logger="medix_r1.data.loaders"):
        res = load_samples(broken_file, on_error="skip", check_images=True)
    assert [s.id for s in res.samples] == ["good1", "good2"]
    assert res.skipped == 6 and len(res.issues) == 6
    assert "skipped 6 bad row(s)" in caplog.text
    # without decoding, images are not checked: the two image rows load (lazily) and fail later
    res = load_samples(broken_file, on_error="skip")
    assert res.skipped == 4
    with pytest.raises(SampleError):
        next(s for s in res.samples if s.id == "bad-image").load_images()


def test_bad_on_error_value_and_missing_sources(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        load_samples(tmp_path, on_error="ignore")
    with pytest.raises(DataError, match="no such file"):
        load_samples(tmp_path / "nope.jsonl")
    with pytest.raises(DataError, match="no such file"):
        load_samples("some/relative/missing.parquet")  # a path, not a hub id
    with pytest.raises(DataError, match="neither"):
        load_samples(tmp_path)  # an empty folder
    (tmp_path / "x.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="unsupported file type"):
        load_samples(tmp_path / "x.csv")


def test_folder_of_split_files(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [{"id": "a", "question": "q?", "answer": "x"}])
    _write_jsonl(tmp_path / "test.jsonl", [{"id": "b", "question": "q?", "answer": "y", "split": "dev"}])
    got = {(s.id, s.split) for s in load_samples(tmp_path).samples}
    assert got == {("a", "train"), ("b", "dev")}  # the row's own split wins over the file name
    assert [s.id for s in load_samples(tmp_path, split="train").samples] == ["a"]
    assert [f for f, _n, _r in iter_rows(tmp_path)] == [str(tmp_path / "test.jsonl"), str(tmp_path / "train.jsonl")]


# ------------------------------------------------------------------------------------------------ bundled
def test_bundled_data_is_valid_and_balanced():
    ok, issues = validate()
    assert issues == []
    samples = load_samples().samples
    assert ok == len(samples) >= 150
    splits = {s.split for s in samples}
    assert splits == {"train", "test"}
    test_share = sum(s.split == "test" for s in samples) / len(samples)
    assert 0.15 <= test_share <= 0.3
    assert {s.answer_type for s in samples} == {"open", "closed", "mcq"}
    with_image = [s for s in samples if s.has_image]
    assert len(with_image) >= 50 and all(s.modality for s in with_image)
    assert {"<CT_SCAN>", "<MRI_SCAN>", "<ULTRASOUND>", "<SPECT>"} <= {s.modality for s in with_image}
    assert all(isinstance(p, Path) and p.is_file() and BUNDLED_DIR in p.parents for s in with_image
               for p in s.images)
    for s in samples:
        if s.answer_type == "mcq":
            assert s.answer in s.options.values() and s.options[s.metadata["answer_letter"]] == s.answer


def test_bundled_images_stay_in_one_split():
    split_of: dict[str, set] = {}
    for s in load_samples().samples:
        for p in s.images:
            split_of.setdefault(p.name, set()).add(s.split)
    assert split_of and all(len(v) == 1 for v in split_of.values())


def test_sample_rejects_bad_values_directly():
    with pytest.raises(SampleError, match="question"):
        Sample(id="a", question="  ", answer="x")
    with pytest.raises(SampleError, match="options"):
        Sample(id="a", question="q", answer="x", answer_type="mcq")
    assert Sample(id="a", question="q", answer="x", modality="").modality is None


def test_hub_id_offline_is_a_clear_error():
    # conftest sets HF_HUB_OFFLINE / HF_DATASETS_OFFLINE: the loader must say what to do, not crash
    with pytest.raises(DataError, match="could not load hub dataset.*pass a local path"):
        load_samples("someorg/no-such-dataset")


def test_plain_parquet_in_canonical_layout(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    _png(tmp_path / "pics/x.png")
    table = pa.table({"id": ["a", "b"], "question": ["Plane?", "Antidote?"], "answer": ["Axial", "Naloxone"],
                      "image": [["pics/x.png"], []], "modality": ["<MRI_SCAN>", None]})
    pq.write_table(table, tmp_path / "rows.parquet")
    a, b = load_samples(tmp_path / "rows.parquet").samples
    assert a.images == [tmp_path / "pics/x.png"] and a.load_images()[0].size == (12, 10)
    assert a.modality == "<MRI_SCAN>" and b.modality is None and not b.has_image
