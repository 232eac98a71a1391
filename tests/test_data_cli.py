"""``medix-r1 data``: exit codes and output of validate, stats, show and build, through ``cli.main``."""

import json
from pathlib import Path

import pytest
from PIL import Image

from medix_r1.cli import main
from medix_r1.data import BUNDLED_DIR
from medix_r1.prompts import get_template


def _write(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_validate_bundled_passes(capsys):
    assert main(["data", "validate"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: ") and " 0 bad row(s)" in out


def test_validate_broken_file_lists_every_bad_row_and_fails(tmp_path, capsys):
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    (tmp_path / "broken.png").write_bytes(b"garbage")
    path = _write(tmp_path / "d.jsonl", [
        {"id": "a", "question": "q?", "answer": "x", "image": "ok.png"},
        "{not json",
        {"id": "b", "question": "q?"},
        {"id": "c", "question": "q?", "answer": "x", "modality": "<BRAIN>"},
        {"id": "d", "question": "q?", "answer": "x", "image": "gone.png"},
        {"id": "e", "question": "q?", "answer": "x", "image": "broken.png"},
    ])
    assert main(["data", "validate", str(path)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 6  # five issues and the summary
    for line, (n, rid, fld) in zip(lines, [(2, None, None), (3, "b", "answer"), (4, "c", "modality"),
                                           (5, "d", "images[0]"), (6, "e", "images[0]")]):
        assert line.startswith(f"{path}:{n}")
        if rid:
            assert f"id={rid}" in line and f"field={fld}" in line
    assert lines[-1].startswith("FAILED: 1 good row(s), 5 bad row(s) in 1 file(s)")


def test_validate_no_images_skips_decoding(tmp_path, capsys):
    path = _write(tmp_path / "d.jsonl", [{"id": "a", "question": "q?", "answer": "x", "image": "gone.png"}])
    assert main(["data", "validate", "--no-images", str(path)]) == 0
    assert main(["data", "validate", str(path)]) == 1


def test_validate_unreadable_source_exits_2(tmp_path, capsys):
    assert main(["data", "validate", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_stats_table_and_json(tmp_path, capsys):
    assert main(["data", "stats"]) == 0
    out = capsys.readouterr().out
    for heading in ("split", "modality", "answer type", "source", "image"):
        assert f"\n{heading} " in out
    assert "<CT_SCAN>" in out and "(text-only)" in out and "with image" in out
    path = _write(tmp_path / "d.jsonl", [
        {"id": "a", "question": "q?", "answer": "Yes", "modality": "<X_RAY>", "source": "s1", "split": "test"},
        {"id": "b", "question": "q?", "answer": "Liver", "source": "s2"},
        {"id": "b", "question": "dup?", "answer": "x"},
    ])
    assert main(["data", "stats", "--json", str(path)]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["rows"] == 2 and stats["bad_rows_skipped"] == 1
    assert stats["modality"] == {"(text-only)": 1, "<X_RAY>": 1}
    assert stats["answer_type"] == {"closed": 1, "open": 1}
    assert stats["split"] == {"(none)": 1, "test": 1}
    assert stats["image"] == {"text only": 2}


def test_show_prints_prompts_and_saves_thumbnails(tmp_path, capsys):
    out_dir = tmp_path / "thumbs"
    assert main(["data", "show", "--n", "2", "--images-only", "--template", "medix-3shot",
                 "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert out.count("=== dcm-") == 2
    assert "--- assistant" in out  # the few-shot turns
    assert "<image>" in out and "--- reference: <" in out
    assert f"version {get_template('medix-3shot').version}" in out
    thumbs = sorted(out_dir.glob("*.png"))
    assert len(thumbs) == 2 and max(Image.open(thumbs[0]).size) <= 256


def test_show_unknown_template_fails_with_a_hint(capsys):
    assert main(["data", "show", "--template", "medix-3shots"]) == 2
    assert "Did you mean 'medix-3shot'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["data", "--help"], ["data", "validate", "--help"], ["data", "stats", "--help"],
                                  ["data", "show", "--help"], ["data", "build", "--help"]])
def test_help_texts(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    assert "Example" in capsys.readouterr().out or argv == ["data", "--help"]


def test_data_without_action_prints_help(capsys):
    assert main(["data"]) == 2
    assert "validate" in capsys.readouterr().out


def test_build_reproduces_the_committed_bundle_byte_for_byte(tmp_path, capsys):
    # Pins both determinism and that the committed data matches the builder (rebuild after editing it).
    assert main(["data", "build", "--out", str(tmp_path)]) == 0
    counts = json.loads(capsys.readouterr().out)
    built = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    committed = {p.relative_to(BUNDLED_DIR): p.read_bytes() for p in BUNDLED_DIR.rglob("*") if p.is_file()}
    assert set(built) == set(committed)
    assert [str(k) for k, v in built.items() if committed[k] != v] == []
    assert counts["rows"] == sum(counts["split"].values()) >= 150
    assert counts["bytes"] < 3_000_000
