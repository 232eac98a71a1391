"""benchmarks/gpu_step.py runs end to end on CPU at toy size (issue 12 item 10: ready to run on a GPU), and its
2b config is the real Qwen3-VL-2B size (counted on the meta device: no weights are allocated)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("gpu_step", ROOT / "benchmarks" / "gpu_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_2b_config_has_qwen3_vl_2b_size():
    import torch

    model, processor = _bench().build_policy("2b", torch.bfloat16, "meta")
    params = sum(p.numel() for p in model.parameters())
    assert 2.10e9 < params < 2.15e9  # Qwen3-VL-2B-Instruct: 2.13 B with tied embeddings
    assert model.config.text_config.vocab_size == 151936 and len(model.model.language_model.layers) == 28
    assert processor.image_processor.patch_size == 16


@pytest.mark.slow
def test_tiny_step_prints_step_time_tokens_per_s_and_memory_with_and_without_checkpointing(tmp_path, capsys):
    out = tmp_path / "figures.json"
    assert _bench().main(["--size", "tiny", "--device", "cpu", "--completion-length", "4", "--image-size", "64",
                          "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    figures = json.loads(out.read_text())
    assert figures["device"].startswith("CPU")
    results = figures["results"]
    assert [r["gradient_checkpointing"] for r in results] == [False, True]
    for r in results:
        assert r["generated_tokens"] == 5 * 4  # G = 5 completions, each runs to the completion length
        assert r["step_time_s"] > 0 and r["generation_tokens_per_s"] > 0 and r["peak_memory_gib"] > 0
    assert printed.count("tokens/s") == 2 and "gradient checkpointing on" in printed
