"""One GRPO step of a Qwen3-VL-2B-sized policy: step time, generation tokens/s and peak memory, with and
without gradient checkpointing.

The policy is built from a config written here in the Qwen3-VL-2B-Instruct architecture (28 decoder layers of
width 2048, 16 query / 8 key-value heads of 128, MLP 6144, a 151,936-token vocabulary with tied embeddings;
a 24-block vision tower of width 1024 with 16 px patches, 2 x 2 merging and deepstack taps at blocks 5, 11
and 17), with RANDOM weights: nothing is downloaded, and the figures measure compute and memory, not
quality. The tokenizer is the bundled SmolLM2 one with the Qwen vision tokens (49,156 ids), so sampled ids
above it decode to nothing; the model's LM head still spans the full vocabulary, as the real one does.

The step is TRL's real ``GRPOTrainer`` with G = 5 completions of one image prompt (a 512 x 512 image: the
paper's lower image bound, 256 image tokens) and ``min_new_tokens`` = ``max_new_tokens`` = the completion
length (random weights would otherwise stop at random), generated with transformers (not vLLM), then the
loss, backward and an AdamW step. TRL's own ``step_time`` is reported; generation is timed around the
model's ``generate``.

    python benchmarks/gpu_step.py                                    # on a GPU: 2B, G = 5 x 2,048 tokens, bf16
    python benchmarks/gpu_step.py --completion-length 4096           # the paper's maximum completion length
    python benchmarks/gpu_step.py --size tiny --device cpu --completion-length 8   # a smoke run (the test)
    python benchmarks/gpu_step.py --json figures.json                # also write the figures as JSON

It prints one line per setting (checkpointing off, then on) and the card it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Qwen3-VL-2B-Instruct's architecture (its published config.json, written out here so no hub is needed).
QWEN3_VL_2B_TEXT = {
    "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28, "num_attention_heads": 16,
    "num_key_value_heads": 8, "head_dim": 128, "hidden_act": "silu", "rms_norm_eps": 1e-6,
    "max_position_embeddings": 262144, "vocab_size": 151936, "tie_word_embeddings": True,
    "rope_parameters": {"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                        "mrope_interleaved": True},
}
QWEN3_VL_2B_VISION = {
    "depth": 24, "hidden_size": 1024, "intermediate_size": 4096, "num_heads": 16, "out_hidden_size": 2048,
    "patch_size": 16, "spatial_merge_size": 2, "temporal_patch_size": 2, "num_position_embeddings": 2304,
    "deepstack_visual_indexes": [5, 11, 17], "hidden_act": "gelu_pytorch_tanh", "in_channels": 3,
}
# The same architecture at toy size, for a CPU smoke run.
TINY_TEXT = {**QWEN3_VL_2B_TEXT, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 4096,
             "rope_parameters": {**QWEN3_VL_2B_TEXT["rope_parameters"], "mrope_section": [2, 3, 3]}}
TINY_VISION = {**QWEN3_VL_2B_VISION, "depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4,
               "out_hidden_size": 64, "num_position_embeddings": 64, "deepstack_visual_indexes": [0]}


def build_policy(size: str, dtype: Any, device: str) -> tuple[Any, Any]:
    """A random Qwen3-VL policy of ``size`` (``2b`` or ``tiny``) and its processor."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor

    from medix_r1.models.processors import without_video
    from medix_r1.models.tiny import VISION_TOKENS, tiny_tokenizer

    tok = tiny_tokenizer()
    text, vision = (QWEN3_VL_2B_TEXT, QWEN3_VL_2B_VISION) if size == "2b" else (TINY_TEXT, TINY_VISION)
    text = {**text, "vocab_size": max(text["vocab_size"], len(tok)), "bos_token_id": tok.bos_token_id,
            "eos_token_id": tok.eos_token_id, "pad_token_id": tok.pad_token_id}
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in zip(
        ("vision_start_token_id", "vision_end_token_id", "image_token_id", "video_token_id"), VISION_TOKENS)}
    config = Qwen3VLConfig(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(config, dtype=dtype)
    gen = model.generation_config
    gen.bos_token_id, gen.eos_token_id, gen.pad_token_id = tok.bos_token_id, tok.eos_token_id, tok.pad_token_id

    from transformers import Qwen2VLImageProcessorPil

    unit = (vision["patch_size"] * vision["spatial_merge_size"]) ** 2
    image_processor = Qwen2VLImageProcessorPil(patch_size=vision["patch_size"], merge_size=2, temporal_patch_size=2,
                                               size={"shortest_edge": unit * 4, "longest_edge": 2048 * 2048})
    processor = without_video(Qwen3VLProcessor)(image_processor=image_processor, tokenizer=tok,
                                                chat_template=tok.chat_template)
    return model, processor


def one_step(size: str, *, device: str, num_generations: int, completion_length: int, image_size: int,
             checkpointing: bool, workdir: Path) -> dict[str, Any]:
    """Build a fresh policy and run one GRPO optimizer step; return its figures."""
    import datasets
    import torch
    from PIL import Image
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer

    cuda = device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model, processor = build_policy(size, dtype, device)
    params = sum(p.numel() for p in model.parameters())

    generated = {"tokens": 0, "seconds": 0.0}
    plain_generate = model.generate

    def timed_generate(*args, **kwargs):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = plain_generate(*args, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        generated["seconds"] += time.perf_counter() - t0
        prompt = kwargs.get("input_ids", args[0] if args else None)
        sequences = out.sequences if hasattr(out, "sequences") else out
        generated["tokens"] += sequences.shape[0] * (sequences.shape[1] - (prompt.shape[1] if prompt is not None
                                                                             else 0))
        return out

    model.generate = timed_generate

    image = Image.new("RGB", (image_size, image_size), (90, 90, 90))
    prompt = [{"role": "user", "content": [{"type": "image"},
                                           {"type": "text", "text": "Describe the finding in this image."}]}]
    ds = datasets.Dataset.from_list([{"prompt": prompt, "images": [image]}])  # one prompt, G completions

    def length_reward(completions, **kwargs):
        return [float(i % 2) for i in range(len(completions))]  # varies within the group, costs nothing

    step_times: list[float] = []

    class StepTime(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "step_time" in logs:
                step_times.append(float(logs["step_time"]))

    args = GRPOConfig(
        output_dir=str(workdir), max_steps=1, num_generations=num_generations,
        per_device_train_batch_size=num_generations, gradient_accumulation_steps=1,
        max_completion_length=completion_length, temperature=1.0,
        generation_kwargs={"min_new_tokens": completion_length}, beta=0.0, loss_type="dapo",
        learning_rate=1e-6, activation_checkpointing=checkpointing, bf16=cuda, use_cpu=not cuda,
        report_to="none", save_strategy="no", logging_steps=1, seed=0, disable_tqdm=True)
    trainer = GRPOTrainer(model=model, reward_funcs=[length_reward], args=args, train_dataset=ds,
                          processing_class=processor, callbacks=[StepTime()])
    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)  # its log dicts would drown the figures
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**30
        peak_kind = "GPU max allocated"
    else:
        # ru_maxrss is in KiB on Linux: the process's peak so far (it includes earlier settings in this run)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        peak_kind = "process peak RSS"
    figures = {
        "size": size, "params_millions": round(params / 1e6, 1), "device": device,
        "dtype": str(dtype).replace("torch.", ""), "gradient_checkpointing": checkpointing,
        "num_generations": num_generations, "completion_length": completion_length,
        "image_tokens": (image_size // 32) ** 2 if size == "2b" else None,
        "step_time_s": round(step_times[0] if step_times else wall, 3), "train_wall_s": round(wall, 3),
        "generated_tokens": generated["tokens"], "generation_s": round(generated["seconds"], 3),
        "generation_tokens_per_s": round(generated["tokens"] / generated["seconds"], 1)
        if generated["seconds"] else None,
        "peak_memory_gib": round(peak, 2), "peak_memory_kind": peak_kind,
    }
    del trainer, model
    if cuda:
        torch.cuda.empty_cache()
    return figures


def describe_device(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(torch.device(device))
        return (f"{p.name}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}, torch {torch.__version__}")
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=["2b", "tiny"], default="2b",
                    help="2b: the Qwen3-VL-2B architecture (default); tiny: the same at toy size (CPU smoke run)")
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when available)")
    ap.add_argument("--num-generations", type=int, default=5, help="G, completions of the prompt (default 5)")
    ap.add_argument("--completion-length", type=int, default=2048,
                    help="tokens per completion, every completion runs to it (default 2048)")
    ap.add_argument("--image-size", type=int, default=512, help="square image edge in pixels (default 512)")
    ap.add_argument("--checkpointing", choices=["both", "on", "off"], default="both",
                    help="gradient checkpointing settings to measure (default both)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    import torch

    from medix_r1.train.warnings import quiet_step_warnings

    quiet_step_warnings()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.size == "2b" and not device.startswith("cuda"):
        print("note: the 2b size on CPU takes a long time and tens of GiB; use --size tiny for a smoke run",
              file=sys.stderr)
    settings = {"both": [False, True], "on": [True], "off": [False]}[args.checkpointing]
    card = describe_device(device)
    print(f"device: {card}")
    results = []
    with tempfile.TemporaryDirectory(prefix="medix-gpu-step-") as work:
        for checkpointing in settings:
            fig = one_step(args.size, device=device, num_generations=args.num_generations,
                           completion_length=args.completion_length, image_size=args.image_size,
                           checkpointing=checkpointing, workdir=Path(work) / f"ckpt-{checkpointing}")
            results.append(fig)
            print(f"{fig['size']} ({fig['params_millions']} M params, {fig['dtype']}), G={fig['num_generations']} x "
                  f"{fig['completion_length']} tokens, gradient checkpointing {'on ' if checkpointing else 'off'}: "
                  f"step {fig['step_time_s']:.2f} s, generation {fig['generation_tokens_per_s']} tokens/s "
                  f"({fig['generated_tokens']} tokens in {fig['generation_s']:.2f} s), "
                  f"peak memory {fig['peak_memory_gib']:.2f} GiB ({fig['peak_memory_kind']})", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": card, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
