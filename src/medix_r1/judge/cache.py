"""The on-disk verdict cache shared by training and evaluation.

A verdict is a pure function of (judge model, prompt name@version, question, reference, prediction) at
temperature 0, so it is computed once and reused: across the 5 samples of a GRPO group that give the same
answer, across epochs, and between a training run and a later evaluation that uses the same judge.

Storage is one SQLite file in WAL mode with a busy timeout, so several processes (data-parallel trainers,
an eval run) can read and write it at once. Only real verdicts are stored: failures (timeout, HTTP error,
unparseable reply) are never cached, so a judge outage does not poison later runs. The raw reply is kept
next to each score.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

from medix_r1.judge.base import JudgeRequest, Verdict
from medix_r1.paths import cache_dir

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verdicts (
    key TEXT PRIMARY KEY,
    judge_model TEXT NOT NULL,
    prompt TEXT NOT NULL,
    score REAL,
    status TEXT NOT NULL,
    raw TEXT,
    created REAL NOT NULL
)
"""
_CHUNK = 500  # SQLite's default limit on host parameters is 999 (older builds); stay well under it


def default_cache_path() -> Path:
    """``$MEDIX_CACHE/judge/verdicts.sqlite``."""
    return cache_dir("judge") / "verdicts.sqlite"


def verdict_key(judge_model: str, prompt_key: str, request: JudgeRequest) -> str:
    """The cache key: a SHA-256 over everything that decides the verdict."""
    payload = json.dumps([judge_model, prompt_key, request.kind, request.question, request.reference,
                          request.prediction], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class VerdictCache:
    """SQLite verdict cache. Safe to share between threads and processes.

    Usage::

        cache = VerdictCache(tmp_path / "v.sqlite")
        cache.put_many({"k1": Verdict(1.0, "ok", raw="YES")}, judge_model="m", prompt="reward-default@1")
        cache.get_many(["k1"])["k1"].score   # 1.0
    """

    def __init__(self, path: str | Path | None = None, *, timeout_s: float = 30.0):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid: int | None = None
        self._connect()  # fail now, with the path in the message, not at the first verdict

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork (DataLoader workers, multiprocessing): reopen in the child.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, check_same_thread=False,
                                   isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
            conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise OSError(f"cannot open the verdict cache {self.path}: {exc}. Use another cache (medix-r1 "
                          f"score --cache-dir, medix-r1 eval --judge-cache-path, reward.judge.cache_path in a "
                          f"recipe) or delete the file if it is corrupt.") from exc
        self._conn, self._pid = conn, os.getpid()
        return conn

    def get_many(self, keys: list[str]) -> dict[str, Verdict]:
        """Return the cached verdicts for those keys that have one (marked ``cached=True``)."""
        out: dict[str, Verdict] = {}
        if not keys:
            return out
        with self._lock:
            conn = self._connect()
            for i in range(0, len(keys), _CHUNK):
                chunk = keys[i: i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT key, score, status, raw FROM verdicts WHERE key IN ({marks})",
                                    chunk).fetchall()
                for key, score, status, raw in rows:
                    out[key] = Verdict(score=score, status=status, raw=raw, cached=True)
        return out

    def get(self, key: str) -> Verdict | None:
        return self.get_many([key]).get(key)

    def put_many(self, verdicts: dict[str, Verdict], *, judge_model: str, prompt: str) -> int:
        """Store real verdicts (failures are skipped). Returns how many rows were written."""
        rows = [(k, judge_model, prompt, v.score, v.status, v.raw, time.time())
                for k, v in verdicts.items() if v.has_verdict and v.score is not None and not v.cached]
        if not rows:
            return 0
        with self._lock:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                # A cache write failure must not stop training: the verdicts are still returned to the caller.
                log.warning("could not write %d verdict(s) to %s: %s", len(rows), self.path, exc)
                return 0
        return len(rows)

    def __len__(self) -> int:
        with self._lock:
            return self._connect().execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        return f"VerdictCache({str(self.path)!r})"
