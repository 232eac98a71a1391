"""Eval sources against their real layouts: each case below pins a bug found when the loaders met the real
datasets (issue 11). Hub routes run offline: the download functions are replaced by ones that serve the
fixture files, so the same code that attaches archives on the hub is exercised."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from medix_r1.data.schema import SampleError
from medix_r1.eval.registry import get_task, resolve_tasks
from medix_r1.eval.sources import ArchiveMember, ArrowImage, DataUnavailable, hub, load_task_data, load_tasks

FIX = Path(__file__).parent / "fixtures" / "eval"


def load(task: str, path=None, protocol: str = "default", **kw):
    return load_task_data(get_task(task, protocol), {task: path} if path is not None else None, **kw)


@pytest.fixture
def fake_hub(monkeypatch):
    """Serve ``repo -> folder`` as hub repositories: snapshots of a glob's files and single downloads."""
    repos: dict[str, Path] = {}
    calls: list[tuple[str, str]] = []

    def snapshot(repo, pattern):
        calls.append((repo, pattern))
        return repos[repo]

    def download(repo, filename):
        calls.append((repo, filename))
        path = repos[repo] / filename
        if not path.is_file():
            raise FileNotFoundError(f"{repo} has no {filename}")
        return path

    monkeypatch.setattr(hub, "snapshot", snapshot)
    monkeypatch.setattr(hub, "download", download)
    repos["calls"] = calls  # type: ignore[assignment]
    return repos


# --------------------------------------------------------------------------------------------- MCQ answers
def test_empty_option_does_not_shift_the_answer():
    """MedMCQA opb = "None", cop = 2 gave "Delta" (options were dropped before the index was applied)."""
    td = load("medmcqa", FIX / "medmcqa")
    s = {x.id: x for x in td.samples}["mm-3"]
    assert s.answer == "Gamma" and s.metadata["answer_letter"] == "C"
    assert set(s.options) == {"A", "C", "D"}  # the empty option is not shown; letters keep their index
    assert [(i.id, i.field) for i in td.issues] == [("mm-4", "answer")]  # cop 7: counted, not shifted


def test_answer_pointing_at_an_empty_option_is_a_bad_input(tmp_path):
    rows = [{"id": "x1", "question": "Q?", "opa": "a", "opb": None, "opc": "c", "opd": "d", "cop": 1}]
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    td = load("medmcqa", tmp_path)
    assert not td.samples and td.issues[0].field == "answer" and "empty option" in td.issues[0].message


def test_medmcqa_original_release_json_lines_with_one_based_cop():
    """dev.json (JSON Lines in a .json file) failed as "not valid JSON"; its cop is 1-based."""
    for path in (FIX / "medmcqa_original" / "dev.json", FIX / "medmcqa_original"):  # the file, or its folder
        td = load("medmcqa", path)
        assert [(s.id, s.answer, s.metadata["answer_letter"]) for s in td.samples] == [
            ("dev-1", "Vitamin C", "B"), ("dev-2", "VI", "D")]


def test_mcq_answer_text_matching_no_option_is_a_bad_input(tmp_path):
    qa = tmp_path / "QA_information" / "Open-access"
    qa.mkdir(parents=True)
    (qa / "X.json").write_text(json.dumps([{"question_id": "X1", "question": "Q?", "gt_answer": "Mass",
                                            "option_A": "Cyst", "option_B": "Normal", "image_path": "a.png",
                                            "modality_type": "CT"}]))
    td = load("omnimedvqa", tmp_path)
    assert not td.samples and (td.issues[0].id, td.issues[0].field) == ("X1", "answer")
    assert "matches none of the options" in td.issues[0].message


def test_usmle_sa_reads_its_only_split_train_and_reports_the_row_count():
    td = load("usmle_sa", FIX / "usmle_sa")
    assert td.spec.source.split == "train" and td.n == 2 and not td.issues
    assert set(td.samples[1].options) == set("ABCDEF")  # the null letters G..I are not options
    report = td.load_report()
    assert report["expected_rows"] == 325 and report["rows_read"] == 2 and report["rows_differ"]
    assert "the release has 325" in report["warnings"][0]
    limited = load("usmle_sa", FIX / "usmle_sa", limit=1)
    assert limited.n == 1 and not limited.row_count_checked and not limited.warnings


# --------------------------------------------------------------------------------------------- PubMedQA
def test_pubmedqa_lowercase_layout_is_a_bad_input_naming_the_columns(tmp_path):
    """qiaojin's lower-case columns gave the question "Context:\\n\\n\\nQuestion:" silently."""
    (tmp_path / "test.jsonl").write_text(json.dumps({"pubid": 1, "question": "Q?", "final_decision": "yes",
                                                     "context": {"contexts": ["c"]}, "long_answer": "L"}) + "\n")
    td = load("pubmedqa", tmp_path)
    assert not td.samples and td.issues[0].field == "question" and td.issues[0].id == "1"
    assert "CONTEXTS, QUESTION" in td.issues[0].message


def test_pubmedqa_paper_protocol_text():
    td = load("pubmedqa", FIX / "pubmedqa" / "test_set.json", protocol="paper")
    s = td.samples[0]
    assert td.spec.protocol == "paper" and s.id == "90001" and s.options is None
    assert s.question == ("Contexts:\nAdults over 65 walked 30 minutes a day for 12 weeks.\n\nQuestion:\n"
                          "Does daily walking lower resting blood pressure in older adults?\n\nChoices:\n"
                          "A. True\nB. False\nC. maybe")
    assert s.answer == "yes\nDaily walking lowered resting systolic pressure."
    assert td.spec.prompt.instruction is None and get_task("pubmedqa").prompt.instruction
    assert td.spec.source.hub == "sahalshajim/medix-eval-sets" and td.spec.rows == 500


# --------------------------------------------------------------------------------------------- paper variants
def test_paper_variants_of_mimic_mmmu_and_pmc_vqa():
    rrg = load("mimic_cxr_rrg", FIX / "mimic_cxr_rrg" / "test.jsonl", protocol="paper").samples[0]
    assert rrg.question == "Generate a detailed report based on the scan." and rrg.answer.endswith("Pneumonia.")
    summ = load("mimic_cxr_sum", FIX / "mimic_cxr_sum.csv", protocol="paper").samples[0]
    assert summ.question.startswith("Write a short summary of the following report.\n\nReport:\nFINDINGS:")
    assert summ.question.endswith("pleural effusion.:") and summ.answer == "Small left pleural effusion."
    assert not summ.images
    default = load("mmmu_med", FIX / "mmmu")
    paper = load("mmmu_med", FIX / "mmmu", protocol="paper")
    two = {s.id: len(s.images) for s in default.samples}["validation_Pharmacy_2"]
    one = {s.id: len(s.images) for s in paper.samples}["validation_Pharmacy_2"]
    assert (two, one) == (2, 1)  # the release shows image_1 only
    specs = {t.name: t for t in resolve_tasks("paper", protocol="paper")}
    assert {n for n, t in specs.items() if t.source.hub == "sahalshajim/medix-eval-sets"} == {
        "pubmedqa", "pmc_vqa", "pmc_vqa_hard", "mimic_cxr_rrg", "mimic_cxr_sum"}
    assert specs["usmle_sa"].source.split == "train" and all(t.protocol == "paper" for t in specs.values())
    assert len(load_tasks("mmlu_anatomy,usmle_sa", {"mmlu_anatomy": FIX / "mmlu", "usmle_sa": FIX / "usmle_sa"},
                          protocol="paper")) == 2


def test_a_broken_paper_section_names_its_key(tmp_path):
    from medix_r1.eval.taskspec import TaskConfigError, parse_task

    with pytest.raises(TaskConfigError, match=r"paper\.fields\.questoin.*did you mean 'question'"):
        parse_task({"name": "t", "source": {"hub": "a/b"}, "paper": {"fields": {"questoin": "q"}}}, "t.yaml")


# --------------------------------------------------------------------------------------------- hub routes
def test_pmc_vqa_hub_route_reads_test_2_only_and_its_figures_from_images_2_zip(fake_hub):
    """The hub route ignored `files: test_2.csv` and merged test.csv, test_2.csv and test_clean.csv."""
    fake_hub["xmcmic/PMC-VQA"] = FIX / "pmc_vqa"
    td = load("pmc_vqa")
    assert td.n == 2 and not td.issues
    assert set(fake_hub["calls"]) == {("xmcmic/PMC-VQA", "test_2.csv"), ("xmcmic/PMC-VQA", "images_2.zip")}
    img = td.samples[0].images[0]
    assert isinstance(img, ArchiveMember) and img.member == "figures/PMC100_F1.jpg"
    assert td.samples[0].load_images()[0].size == (8, 8)
    assert td.samples[1].answer == "Left kidney" and td.samples[1].metadata["Caption"].startswith("A mass")


def test_slake_hub_route_attaches_images_from_imgs_zip(fake_hub):
    """Relative image names had no base on the hub route: every row was "image file not found"."""
    fake_hub["BoKelvin/SLAKE"] = FIX / "slake"
    td = load("slake")
    assert [s.id for s in td.samples] == ["11", "13", "14"]
    assert td.samples[0].images[0].member == "imgs/xmlab1/source.jpg"
    assert td.samples[1].load_images()[0].getpixel((0, 0))[0] > 150
    with pytest.raises(SampleError, match="xmlab3/source.jpg.*is not in the archive"):
        td.samples[2].load_images()


def test_slake_local_folder_with_imgs_unzipped(tmp_path):
    shutil.copy(FIX / "slake" / "test.json", tmp_path / "test.json")
    with zipfile.ZipFile(FIX / "slake" / "imgs.zip") as zf:
        zf.extractall(tmp_path)
    td = load("slake", tmp_path)
    assert td.samples[0].images[0] == tmp_path / "imgs" / "xmlab1" / "source.jpg"
    td.samples[0].load_images()


def test_pmc_vqa_csv_file_with_figures_folder_and_medxpertqa_with_images_folder(tmp_path):
    """A local copy as published, unzipped: test_2.csv passed as a file with figures/ beside it."""
    pmc = tmp_path / "pmc"
    pmc.mkdir()
    shutil.copy(FIX / "pmc_vqa" / "test_2.csv", pmc / "test_2.csv")
    with zipfile.ZipFile(FIX / "pmc_vqa" / "images_2.zip") as zf:
        zf.extractall(pmc)
    td = load("pmc_vqa", pmc / "test_2.csv")
    assert td.n == 2 and td.samples[0].images == [pmc / "figures" / "PMC100_F1.jpg"]
    mx = tmp_path / "mx"
    shutil.copytree(FIX / "medxpertqa" / "MM", mx / "MM")
    with zipfile.ZipFile(FIX / "medxpertqa" / "images.zip") as zf:
        zf.extractall(mx)
    s = load("medxpertqa_mm", mx).samples[0]
    assert s.images == [mx / "images" / "MM-1-a.jpeg"] and s.load_images()


def test_medxpertqa_mm_hub_route_attaches_images_zip(fake_hub, monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (FIX / "medxpertqa" / "MM" / "test.jsonl").read_text().splitlines()]
    seen = []

    def load_dataset(repo, config, split):
        seen.append((repo, config, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    fake_hub["TsinghuaC3I/MedXpertQA"] = FIX / "medxpertqa"
    td = load("medxpertqa_mm")
    assert seen == [("TsinghuaC3I/MedXpertQA", "MM", "test")]
    assert td.samples[0].images[0].member == "images/MM-1-a.jpeg" and td.samples[0].load_images()
    rows = [json.loads(line) for line in (FIX / "medxpertqa" / "Text" / "test.jsonl").read_text().splitlines()]
    fake_hub["calls"].clear()
    assert load("medxpertqa_text").n == 1 and not fake_hub["calls"]  # the text task fetches no image archive


def test_omnimedvqa_hub_zip_and_local_folder(fake_hub, tmp_path):
    """OmniMedVQA is one zip on the hub (foreverbeliever/OmniMedVQA); one file says `modality`."""
    fake_hub["foreverbeliever/OmniMedVQA"] = FIX / "omnimedvqa"
    td = load("omnimedvqa")
    assert fake_hub["calls"] == [("foreverbeliever/OmniMedVQA", "*.zip")]
    by_id = {s.id: s for s in td.samples}
    assert set(by_id) == {"DermSet_0001", "FundusSet_0001"} and not td.issues
    assert by_id["FundusSet_0001"].modality == "<FUNDUS_PHOTOGRAPHY>"
    assert by_id["DermSet_0001"].modality == "<CLINICAL_PHOTOGRAPHY>"  # from the `modality` key
    assert by_id["FundusSet_0001"].images[0].member == "OmniMedVQA/Images/FundusSet/f1.png"
    by_id["FundusSet_0001"].load_images()
    with zipfile.ZipFile(FIX / "omnimedvqa" / "OmniMedVQA.zip") as zf:
        zf.extractall(tmp_path)
    local = load("omnimedvqa", tmp_path / "OmniMedVQA")
    assert local.n == 2 and isinstance(local.samples[0].images[0], Path)
    local.samples[0].load_images()


def test_missing_hub_file_says_how_to_pass_a_local_copy(fake_hub):
    fake_hub["xmcmic/PMC-VQA"] = FIX / "medqa"
    with pytest.raises(DataUnavailable, match=r"(?s)cannot download 'images_2.zip'.*--data-dir pmc_vqa=PATH"):
        load("pmc_vqa")


# --------------------------------------------------------------------------------------------- lazy, bounded
def test_hub_split_is_read_lazily_and_limit_stops_before_decoding(monkeypatch):
    """PathVQA decoded ~6.7k images before --limit applied."""
    import datasets
    import PIL.Image
    import pyarrow.parquet as pq

    ds = datasets.Dataset(pq.read_table(FIX / "path_vqa" / "data" / "test-00000-of-00001.parquet"))
    assert isinstance(ds.features["image"], datasets.Image)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: ds)
    opened = []
    real_open = PIL.Image.open
    monkeypatch.setattr(PIL.Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    td = load("path_vqa", limit=1)
    assert td.n == 1 and isinstance(td.samples[0].images[0], ArrowImage) and not opened
    assert td.samples[0].load_images()[0].size == (8, 8) and opened


def test_oversized_and_broken_images_fail_their_sample_only(monkeypatch):
    import PIL.Image

    td = load("vqa_rad", FIX / "vqa_rad")
    with pytest.raises(SampleError, match="cannot decode image"):
        td.samples[2].load_images()
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 10)  # 8x8 = 64 pixels, over twice the limit
    with pytest.raises(SampleError, match="cannot decode image"):
        td.samples[0].load_images()


def test_unreadable_json_names_the_file(tmp_path):
    bad = tmp_path / "test.json"
    bad.write_text("[{oops")
    with pytest.raises(DataUnavailable, match=r"test\.json.*not valid JSON"):
        load("pubmedqa", bad)


def test_an_oversized_image_is_a_bad_input_and_the_phase_goes_on(monkeypatch, tmp_path):
    """A DecompressionBombError (not an OSError) escaped the phase's error handling and aborted it."""
    import io

    import PIL.Image
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medix_r1.eval import run_eval
    from medix_r1.eval.generation import openai_generator
    from medix_r1.testing.openai_stub import StubChatServer

    def png(side: int) -> bytes:
        buf = io.BytesIO()
        PIL.Image.new("RGB", (side, side), (50, 50, 50)).save(buf, format="PNG")
        return buf.getvalue()

    rows = [{"image": {"bytes": png(side), "path": f"{side}.png"}, "question": f"is it {side}?", "answer": "no"}
            for side in (8, 16, 8)]
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "data" / "test-00000-of-00001.parquet")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 100)  # 16x16 is over twice the limit, 8x8 is not
    with StubChatServer(lambda messages, request=None: "<think>x</think><answer>no</answer>", model="p") as pol:
        res = run_eval(["vqa_rad"], openai_generator(pol.url, pol.model, max_retries=0, timeout=5), None,
                       tmp_path / "out", data_dirs={"vqa_rad": tmp_path}, progress=False)
        assert pol.request_count == 2  # the oversized image was not sent; the others were
    counts = res["tasks"]["vqa_rad"]["counts"]
    assert counts["bad_input"] == 1 and res["tasks"]["vqa_rad"]["n"] == 3


def test_pmc_vqa_paper_variant_reads_only_test_2_from_a_local_folder(tmp_path):
    shutil.copy(FIX / "pmc_vqa" / "test_2.csv", tmp_path / "test_2.csv")
    shutil.copy(FIX / "pmc_vqa" / "test.csv", tmp_path / "test.csv")
    with zipfile.ZipFile(FIX / "pmc_vqa" / "images_2.zip") as zf:
        zf.extractall(tmp_path)
    td = load("pmc_vqa_hard", tmp_path, protocol="paper")
    assert td.spec.source.hub == "sahalshajim/medix-eval-sets" and td.n == 2 and not td.issues
    assert td.samples[0].options is None and td.samples[0].load_images()


def test_real_hub_client_offline_with_an_empty_cache_says_how_to_pass_a_local_copy(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # never the network
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    for task in ("slake", "omnimedvqa"):  # a named file (hf_hub_download), a glob (snapshot_download)
        with pytest.raises(DataUnavailable, match=rf"(?s)cannot download.*--data-dir {task}=PATH"):
            load(task)


def test_limit_stops_reading_inside_a_zip(monkeypatch):
    from medix_r1.eval.sources.archives import ZipTree

    read = []
    real = ZipTree.read
    monkeypatch.setattr(ZipTree, "read", lambda self, member: read.append(member) or real(self, member))
    assert load("omnimedvqa", FIX / "omnimedvqa" / "OmniMedVQA.zip", limit=1).n == 1
    assert read == ["OmniMedVQA/QA_information/Open-access/DermSet.json"]  # the second file was never read


def test_a_config_folder_that_is_missing_is_not_filled_from_another_config():
    """A cais/mmlu root without clinical_knowledge/ gave that task the anatomy rows."""
    with pytest.raises(DataUnavailable, match=r"found no file of split 'test' \(and no clinical_knowledge/ folder\)"):
        load("mmlu_clinical_knowledge", FIX / "mmlu")
    assert load("mmlu_anatomy", FIX / "mmlu" / "anatomy").n == 3  # the config's own folder, passed directly


def test_save_to_disk_folder_keeps_images_lazy(tmp_path):
    import datasets
    import pyarrow.parquet as pq

    ds = datasets.Dataset(pq.read_table(FIX / "vqa_rad" / "data" / "test-00000-of-00001.parquet"))
    datasets.DatasetDict({"test": ds}).save_to_disk(str(tmp_path / "saved"))
    td = load("vqa_rad", tmp_path / "saved")
    assert td.n == 3 and isinstance(td.samples[0].images[0], ArrowImage)
    assert td.samples[1].load_images()[0].size == (8, 8)
