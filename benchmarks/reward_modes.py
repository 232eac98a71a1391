"""Measurements behind the default reward mode's departures from the paper mode (docs/rewards.md).

Offline, on the bundled data and the bundled all-MiniLM-L6-v2 (no judge needed):

1. closed (yes/no) questions: how often ``accuracy_embed`` gets the polarity wrong in paper mode (binary
   cosine at 0.8) versus default mode (leading yes/no decides), over natural answer phrasings;
2. laterality: the same for left/right answers;
3. the paper's invalid-answer guard: how many bundled references it would zero if a model repeated them
   word for word (``:``, ``?``, ``__`` or one character);
4. case: how many verbatim-correct answers the paper's case-sensitive exact match sends to the judge.

    python benchmarks/reward_modes.py
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medix_r1.data import load_samples
from medix_r1.rewards import Embedder, RewardConfig, RewardSuite
from medix_r1.rewards.checks import paper_invalid

YES_FORMS = ["Yes", "yes.", "Yes, it is present.", "Yes, this is seen on the image.", "Yes - clearly visible"]
NO_FORMS = ["No", "no.", "No, it is not present.", "No, this is not seen on the image.", "No - not visible"]
STRUCTURES = ["pleural effusion", "kidney", "lower lobe", "ovary", "hemisphere", "adrenal gland", "breast",
              "femoral head", "parotid gland", "vertebral artery"]


def embed_accuracy(suite: RewardSuite, answers: list[str], references: list[str], truth: list[float]) -> float:
    texts = [f"<OTHER><thinking>r</thinking><answer>{a}</answer>" for a in answers]
    got = suite.accuracy_embed(completions=texts, answer=references)
    return sum(g == t for g, t in zip(got, truth)) / len(truth)


def main() -> int:
    emb = Embedder("minilm")
    suites = {m: RewardSuite(RewardConfig(mode=m, components=["accuracy_embed"], embedding_model="minilm"),
                             embedder=emb) for m in ("paper", "default")}

    # 1. closed questions: every (answer form, reference) pair; right when the polarity agrees
    answers, refs, truth = [], [], []
    for ref in ("Yes", "No"):
        for forms, pol in ((YES_FORMS, "Yes"), (NO_FORMS, "No")):
            for f in forms:
                answers.append(f)
                refs.append(ref)
                truth.append(1.0 if pol == ref else 0.0)
    print(f"1. closed questions ({len(truth)} answer/reference pairs, half right):")
    for m, s in suites.items():
        print(f"   {m:<8} accuracy_embed agrees with the truth on {embed_accuracy(s, answers, refs, truth):.0%}")
    print(f"   cosine 'yes' vs 'no': {emb.similarity(['yes'], ['no'])[0]:.2f}; 'Yes, it is present.' vs 'No': "
          f"{emb.similarity(['Yes, it is present.'], ['No'])[0]:.2f}")

    # 2. laterality: same structure, same or other side
    answers, refs, truth = [], [], []
    for s_ in STRUCTURES:
        for a_side in ("left", "right"):
            for r_side in ("left", "right"):
                answers.append(f"{a_side.capitalize()} {s_}")
                refs.append(f"{r_side} {s_}")
                truth.append(1.0 if a_side == r_side else 0.0)
    sims = emb.similarity([a for a, t in zip(answers, truth) if not t], [r for r, t in zip(refs, truth) if not t])
    print(f"2. laterality ({len(truth)} pairs, half on the wrong side; wrong-side cosines "
          f"{min(sims):.2f}-{max(sims):.2f}):")
    for m, s in suites.items():
        print(f"   {m:<8} accuracy_embed agrees with the truth on {embed_accuracy(s, answers, refs, truth):.0%}")

    # 3 + 4. the bundled references
    samples = load_samples(split="train").samples + load_samples(split="test").samples
    zeroed = [s for s in samples if paper_invalid(s.answer.strip().strip("."))]
    print(f"3. paper invalid-answer guard: {len(zeroed)} of {len(samples)} bundled references would score 0 even "
          f"when repeated verbatim, e.g. {[z.answer for z in zeroed[:3]]}")
    lower = [s for s in samples if s.answer.lower() != s.answer]
    print(f"4. case: {len(lower)} of {len(samples)} references contain capitals; a lower-cased but otherwise "
          f"verbatim answer is an exact match in default mode and a judge call in paper mode")
    return 0


if __name__ == "__main__":
    sys.exit(main())
