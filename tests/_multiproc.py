"""Launch a real multi-process run for the tests: ``torchrun --nproc_per_node N`` on CPU (gloo backend).

``torchrun_cli(["train", recipe, "--output-dir", out])`` runs ``python -m medix_r1.cli ...`` in N processes
and returns a :class:`MultiprocResult` with torchrun's exit code, its output, each rank's stdout/stderr
(``--redirects 3 --log-dir``) and each rank's exit code (from torchrun's failure report; 0 for every rank
when torchrun succeeded). The child processes inherit ``PYTHONPATH`` and ``MEDIX_CACHE``, so they run this
checkout's code with the shared model cache; the recipe must set ``trainer.use_cpu: true``.

Shared by the multi-process test files (training, rewards, engines).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

_EXITCODE = re.compile(r"rank\s*:\s*(\d+)\s*\(local_rank: \d+\)\s*\n\s*exitcode\s*:\s*(-?\d+)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MultiprocResult:
    returncode: int
    output: str
    nproc: int
    log_dir: Path
    rank_exitcodes: dict[int, int] = field(default_factory=dict)

    def _rank_file(self, rank: int, name: str) -> str:
        files = sorted(self.log_dir.glob(f"*/attempt_0/{rank}/{name}"))
        return files[-1].read_text(errors="replace") if files else ""

    def stdout(self, rank: int) -> str:
        return self._rank_file(rank, "stdout.log")

    def stderr(self, rank: int) -> str:
        return self._rank_file(rank, "stderr.log")

    def describe(self) -> str:
        """Everything a failing assertion should show."""
        parts = [f"torchrun exit {self.returncode}, ranks {self.rank_exitcodes}", self.output[-3000:]]
        for r in range(self.nproc):
            parts += [f"--- rank {r} stderr ---", self.stderr(r)[-3000:]]
        return "\n".join(parts)


def torchrun_cli(cli_args: list[str], *, log_dir: Path, nproc: int = 2, timeout: float = 300,
                 env: dict[str, str] | None = None) -> MultiprocResult:
    """``torchrun --nproc_per_node nproc -m medix_r1.cli *cli_args`` on 127.0.0.1, waiting at most ``timeout``."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    src = str(Path(__file__).resolve().parents[1] / "src")
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--log-dir", str(log_dir),
           "--redirects", "3", "-m", "medix_r1.cli", *cli_args]
    proc = subprocess.run(cmd, check=False, env=run_env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    codes = {int(r): int(c) for r, c in _EXITCODE.findall(output)}
    if proc.returncode == 0:
        codes = dict.fromkeys(range(nproc), 0)
    return MultiprocResult(proc.returncode, output, nproc, log_dir, codes)
