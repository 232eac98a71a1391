"""Generation speed of a policy through medix_r1.models.generate_chat (prints figures; not a test).

    .venv/bin/python benchmarks/model_generation.py                      # embedded demo policy
    .venv/bin/python benchmarks/model_generation.py --policy smollm2 --batch-sizes 1 8
    .venv/bin/python benchmarks/model_generation.py --policy tiny-qwen2.5-vl --images 0

Tokens are counted by re-tokenising the replies, so the figure is "reply tokens per second", including the
prompt prefill. On a shared 2-core machine figures vary with whatever else runs.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="embedded", help="alias, folder or hub id (default: embedded)")
    ap.add_argument("--prompts", type=int, default=8, help="number of conversations (default 8)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--images", type=int, default=1, help="images per conversation for VLMs (0 or 1)")
    ap.add_argument("--temperature", type=float, default=0.0)
    args = ap.parse_args()

    from PIL import Image

    from medix_r1.models import generate_chat, load_policy

    t0 = time.perf_counter()
    policy = load_policy(args.policy)
    print(f"{args.policy}: {policy.family}, VLM={policy.is_vlm}, "
          f"{sum(p.numel() for p in policy.model.parameters()) / 1e6:.1f} M params, "
          f"loaded in {time.perf_counter() - t0:.1f} s on {policy.model.device}")
    questions = ["Which organ does this scan show?", "Is there a fracture?", "Name the imaging modality.",
                 "What is the most likely diagnosis?"]
    use_images = policy.is_vlm and args.images > 0
    convs, images = [], []
    for i in range(args.prompts):
        content = [{"type": "text", "text": "Answer the medical question.\nQuestion:"}]
        if use_images:
            content.append({"type": "image"})
        content.append({"type": "text", "text": questions[i % len(questions)]})
        convs.append([{"role": "user", "content": content}])
        images.append([Image.new("RGB", (224, 224), (40 * i % 255, 90, 160))] if use_images else [])

    generate_chat(policy, convs[:1], images[:1], max_new_tokens=4)  # warm-up
    for bs in args.batch_sizes:
        start = time.perf_counter()
        out = generate_chat(policy, convs, images, max_new_tokens=args.max_new_tokens,
                            temperature=args.temperature, seed=0, batch_size=bs)
        elapsed = time.perf_counter() - start
        tokens = sum(len(policy.tokenizer(o, add_special_tokens=False)["input_ids"]) for o in out)
        print(f"batch {bs:>2}: {len(out)} replies, {tokens} tokens in {elapsed:.2f} s = "
              f"{tokens / elapsed:.1f} tokens/s, {elapsed / len(out):.2f} s/reply")


if __name__ == "__main__":
    main()
