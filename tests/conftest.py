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


# One runs folder and one app process for test_app.py and test_app_browser.py (building the runs and starting
# the app take most of their time on 2 cores). Each test file votes on its own review.
import pytest


@pytest.fixture(scope="session")
def app_runs(tmp_path_factory):
    from medix_r1.review import create_review
    from medix_r1.testing.app_runs import make_demo_runs

    root = make_demo_runs(tmp_path_factory.mktemp("app-runs"))
    for name, seed in (("r1", 0), ("clinic", 3)):
        create_review(root / "reviews" / name, root / "demo" / "eval-start", root / "demo" / "eval-trained",
                      seed=seed)
    broken = root / "broken-train"
    broken.mkdir()
    (broken / "metrics.jsonl").write_text('{"step": 1, "reward": 0.2}\n{"step": 2, "rew\n{"step": 3, "reward": 0.4}\n')
    return root


@pytest.fixture(scope="session")
def app_server(app_runs):
    from medix_r1.models.bundled import embedded_policy_path
    from medix_r1.testing.app_runs import AppProcess

    # Build the embedded policy here, once (about a minute with a cold MEDIX_CACHE, as on a fresh CI machine),
    # so the browser's wait for an answer measures the app, not the first build of the cached model.
    embedded_policy_path()
    with AppProcess(app_runs, "--max-new-tokens", "16") as proc:
        yield proc
