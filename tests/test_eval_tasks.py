"""Eval tasks: strict YAML validation, the registry and groups, and every loader on a fixture in its source's
own format (tests/fixtures/eval, written by make_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medix_r1.eval.registry import PAPER_TASKS, groups, resolve_tasks, task_registry
from medix_r1.eval.sources import DataUnavailable, guess_modality, load_task_data
from medix_r1.eval.taskspec import TaskConfigError, load_task_file, parse_task
from medix_r1.registry import UnknownNameError

FIX = Path(__file__).parent / "fixtures" / "eval"
GOOD = {"name": "t", "source": {"hub": "org/ds"}, "fields": {"question": "q", "answer": "a"}}


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# --------------------------------------------------------------------------------------------- validation
def test_unknown_key_names_file_key_and_nearest(tmp_path):
    p = write(tmp_path, "bad.yaml", "name: bad\nsource: {hub: a/b}\nfields: {question: q, optons: choices}\n")
    with pytest.raises(TaskConfigError) as exc:
        load_task_file(p)
    msg = str(exc.value)
    assert str(p) in msg and "fields.optons" in msg and "did you mean 'options'" in msg


def test_unknown_top_level_key_and_bad_choice(tmp_path):
    with pytest.raises(TaskConfigError, match=r"scorrer.*did you mean 'scorer'"):
        parse_task({**GOOD, "scorrer": "mcq"}, "x.yaml")
    with pytest.raises(TaskConfigError, match=r"scorer: must be one of auto, mcq, binary, rubric, got 'bianry'.*"
                                              r"did you mean 'binary'"):
        parse_task({**GOOD, "scorer": "bianry"}, "x.yaml")


def test_wrong_types_missing_name_and_inconsistent_settings():
    with pytest.raises(TaskConfigError, match=r"fields\.metadata: must be a list of strings"):
        parse_task({**GOOD, "fields": {"metadata": "subject"}})
    with pytest.raises(TaskConfigError, match="name: missing"):
        parse_task({"source": {"hub": "a/b"}})
    with pytest.raises(TaskConfigError, match="fields.options"):
        parse_task({**GOOD, "scorer": "mcq"})
    with pytest.raises(TaskConfigError, match="rubric scorer goes with answer_type: report"):
        parse_task({**GOOD, "scorer": "rubric"})
    with pytest.raises(TaskConfigError, match="source"):
        parse_task({"name": "t"})
    with pytest.raises(TaskConfigError, match="unknown modality tag"):
        parse_task({**GOOD, "modality": "LIVER"})
    with pytest.raises(TaskConfigError, match="automatic"):
        parse_task({**GOOD, "groups": ["vision"]})
    with pytest.raises(TaskConfigError, match="invalid regular expression"):
        parse_task({**GOOD, "fields": {"question_remove": "("}})


def test_base_file_is_merged_and_missing_base_is_named(tmp_path):
    write(tmp_path, "_base.yaml", "version: 3\nsource: {hub: org/ds, split: validation}\nscorer: binary\n")
    p = write(tmp_path, "child.yaml", "base: _base.yaml\nname: child\nsource: {config: c1}\n")
    spec = load_task_file(p)
    assert (spec.version, spec.source.hub, spec.source.split, spec.source.config) == ("3", "org/ds", "validation", "c1")
    bad = write(tmp_path, "orphan.yaml", "base: _nope.yaml\nname: orphan\n")
    with pytest.raises(TaskConfigError, match=r"orphan\.yaml: base: base file '_nope.yaml' not found"):
        load_task_file(bad)
    broken = write(tmp_path, "broken.yaml", "name: [unclosed\n")
    with pytest.raises(TaskConfigError, match="not valid YAML"):
        load_task_file(broken)


# --------------------------------------------------------------------------------------------- registry
def test_shipped_tasks_and_groups():
    reg = task_registry()
    names = set(reg.names())
    issue_tasks = set(PAPER_TASKS) | {"mmmu_med", "omnimedvqa", "medxpertqa_text", "medxpertqa_mm", "medix-demo"}
    assert issue_tasks <= names
    g = groups()
    assert g["paper"] == list(PAPER_TASKS)  # the reference's 17, in its order
    assert "medix-demo" not in g["all"] and g["demo"] == ["medix-demo"]
    assert set(g["text"]) | set(g["vision"]) == set(g["all"]) and not set(g["text"]) & set(g["vision"])
    assert {"slake", "vqa_rad", "mimic_cxr_rrg", "medxpertqa_mm"} <= set(g["vision"])
    assert {"pubmedqa", "mimic_cxr_sum", "medxpertqa_text"} <= set(g["text"])
    assert all(reg.get(n).version for n in names)


def test_resolve_tasks_names_groups_files_and_typos():
    got = [t.name for t in resolve_tasks(f"vqa_rad,mmlu,{FIX / 'canonical' / 'clinic_qa.jsonl'},vqa_rad")]
    assert got[0] == "vqa_rad" and got[1:7] == list(PAPER_TASKS[:6]) and got[-1] == "clinic_qa" and len(got) == 8
    with pytest.raises(UnknownNameError, match="Did you mean 'vqa_rad'"):
        resolve_tasks("vqa-rad2")


def test_cli_lists_tasks_and_groups(capsys):
    from medix_r1.cli import main

    assert main(["eval", "tasks"]) == 0
    out = capsys.readouterr().out
    assert "mimic_cxr_rrg" in out and "paper" in out and "17" in out
    assert main(["eval", "tasks", "--group", "paper", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data["tasks"]) == list(PAPER_TASKS)


# --------------------------------------------------------------------------------------------- loaders
LOADERS = {
    # task: (fixture path, expected number of rows, checks on the first sample)
    "mmlu_anatomy": ("mmlu", 3, {"answer": "Olecranon of the ulna", "answer_type": "mcq", "letter": "B"}),
    "medmcqa": ("medmcqa", 4, {"answer": "Vitamin C", "letter": "B", "issues": 1}),
    "medqa": ("medqa", 2, {"answer": "Carcinoma of the head of the pancreas", "letter": "B"}),
    "usmle_sa": ("usmle_sa", 2, {"answer": "Hyperkalemia", "letter": "B"}),
    "pubmedqa": ("pubmedqa/test_set.json", 2, {"answer_start": "yes. Daily walking",
                                               "question_has": "30 minutes a day", "answer_type": "closed",
                                               "id": "90001"}),
    "mimic_cxr_sum": ("mimic_cxr_sum.csv", 2, {"answer": "Small left pleural effusion.", "modality": "<X_RAY>",
                                               "id": "s1", "question_has": "Report:\nFINDINGS: Heart size"}),
    "mimic_cxr_rrg": ("mimic_cxr_rrg/test.jsonl", 1, {"images": 1, "modality": "<X_RAY>",
                                                      "question_has": "Generate a detailed report",
                                                      "answer_start": "FINDINGS: Right lower lobe"}),
    "slake": ("slake", 3, {"answer": "Liver", "modality": "<CT_SCAN>", "images": 1, "id": "11",
                           "answer_type": "open"}),
    "vqa_rad": ("vqa_rad", 3, {"answer": "no", "answer_type": "closed", "images": 1}),
    "path_vqa": ("path_vqa", 2, {"answer": "hematoxylin and eosin", "modality": "<MICROSCOPY>", "images": 1}),
    "pmc_vqa": ("pmc_vqa", 2, {"answer": "Computed tomography", "letter": "B", "images": 1}),
    "pmc_vqa_hard": ("pmc_vqa", 2, {"answer": "Computed tomography", "answer_type": "open", "no_options": True}),
    "mmmu_med": ("mmmu", 6, {"answer": "Trachea", "letter": "B", "images": 1}),
    "omnimedvqa": ("omnimedvqa/OmniMedVQA.zip", 2, {"answer": "Dermoscopy", "letter": "A",
                                                    "modality": "<CLINICAL_PHOTOGRAPHY>", "images": 1}),
    "medxpertqa_text": ("medxpertqa", 1, {"answer": "Plasma metanephrines", "letter": "A",
                                          "question_not": "Answer Choices"}),
    "medxpertqa_mm": ("medxpertqa", 1, {"answer": "Effusion", "letter": "B", "images": 1}),
}


@pytest.mark.parametrize("task", sorted(LOADERS))
def test_loader_on_fixture(task):
    rel, n, checks = LOADERS[task]
    td = load_task_data(resolve_tasks(task)[0], {task: FIX / rel})
    assert td.n == n
    assert len(td.issues) == checks.get("issues", 0)
    s = td.samples[0]
    if "answer" in checks:
        assert s.answer == checks["answer"]
    if "answer_start" in checks:
        assert s.answer.startswith(checks["answer_start"])
    if "letter" in checks:
        assert s.metadata["answer_letter"] == checks["letter"] and s.options[checks["letter"]] == s.answer
        assert s.answer_type == "mcq"
    if "answer_type" in checks:
        assert s.answer_type == checks["answer_type"]
    if "modality" in checks:
        assert s.modality == checks["modality"]
    if "images" in checks:
        assert len(s.images) == checks["images"]
        s.load_images()  # the image resolves and decodes (path relative to the data folder, or hub bytes)
    if "id" in checks:
        assert s.id == checks["id"]
    if "question_has" in checks:
        assert checks["question_has"] in s.question
    if "question_not" in checks:
        assert checks["question_not"] not in s.question
    if checks.get("no_options"):
        assert s.options is None
    assert len({*td.ids}) == td.n  # ids are unique within a task


def test_slake_filters_language_and_keeps_missing_image_for_an_error_row():
    td = load_task_data(resolve_tasks("slake")[0], {"slake": FIX / "slake"})
    assert [s.id for s in td.samples] == ["11", "13", "14"]  # the Chinese row 12 is filtered out
    from medix_r1.data.schema import SampleError

    with pytest.raises(SampleError, match="is not in the archive"):
        td.samples[2].load_images()


def test_mmmu_open_question_and_data_dir_root(tmp_path):
    td = load_task_data(resolve_tasks("mmmu_med")[0], {"mmmu_med": FIX / "mmmu"})
    open_q = next(s for s in td.samples if s.id == "validation_Pharmacy_2")
    assert open_q.options is None and open_q.answer == "6" and open_q.answer_type == "open"
    # A root folder holding one entry per task name works too.
    root = tmp_path / "data"
    root.mkdir()
    (root / "usmle_sa").symlink_to(FIX / "usmle_sa")
    assert load_task_data(resolve_tasks("usmle_sa")[0], root).n == 2


def test_canonical_jsonl_task_keeps_bad_rows_as_issues():
    spec = resolve_tasks(str(FIX / "canonical" / "clinic_qa.jsonl"))[0]
    td = load_task_data(spec)
    assert spec.name == "clinic_qa" and td.kind == "vision"
    assert [s.id for s in td.samples] == ["c1", "c2", "c3"]
    assert [(i.id, i.field) for i in td.issues] == [("c4", "question")]
    assert td.samples[2].answer_type == "mcq" and td.samples[0].modality == "<CT_SCAN>"


def test_bundled_demo_task_loads():
    td = load_task_data(resolve_tasks("medix-demo")[0])
    assert td.n > 20 and not td.issues
    assert {s.answer_type for s in td.samples} >= {"open", "closed"}


def test_mimic_needs_credentials_message_and_env(monkeypatch):
    spec = resolve_tasks("mimic_cxr_sum")[0]
    monkeypatch.delenv("MEDIX_MIMIC_CXR_SUM", raising=False)
    with pytest.raises(DataUnavailable, match=r"PhysioNet.*--data-dir mimic_cxr_sum=PATH.*\$MEDIX_MIMIC_CXR_SUM"):
        load_task_data(spec)
    monkeypatch.setenv("MEDIX_MIMIC_CXR_SUM", str(FIX / "mimic_cxr_sum.csv"))
    assert load_task_data(spec).n == 2


def test_hub_failure_says_how_to_pass_a_local_copy(monkeypatch):
    import datasets

    def offline(*a, **k):
        raise ConnectionError("hub unreachable")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataUnavailable, match=r"(?s)flaviagiammarino/vqa-rad.*--data-dir vqa_rad=PATH"):
        load_task_data(resolve_tasks("vqa_rad")[0])


def test_guess_modality():
    assert guess_modality("MR (Mag-netic Resonance Imaging)") == "<MRI_SCAN>"
    assert guess_modality("OCT (Optical Coherence Tomography") == "<OCT_SCAN>"
    assert guess_modality("Microscopy Images") == "<MICROSCOPY>"
    assert guess_modality("abdomen") is None
