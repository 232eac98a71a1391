"""Test session setup: offline, deterministic, one shared model cache.

HF_HUB_OFFLINE=1 so nothing reaches a model hub; MEDIX_CACHE points to the repo's .cache/ so models built
from bundled weights (dequantised SmolLM2, tiny VLMs) are built once and reused by later tests and runs.
"""

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("MEDIX_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "medix-r1"))
