"""Launch a real multi-process run for the tests: ``torchrun --nproc_per_node N`` on CPU (gloo backend).

``torchrun_cli(["train", recipe, "--output-dir", out])`` runs ``python -m medix_r1.cli ...`` in N processes
and returns a :class:`MultiprocResult` with torchrun's exit code, its output, each rank's stdout/stderr
(``--redirects 3 --log-dir``) and each rank's exit code (from torchrun's failure report; 0 for every rank
when torchrun succeeded). The child processes inherit ``PYTHONPATH`` and ``MEDIX_CACHE``, so they run this
checkout's code with the shared model cache; the recipe must set ``trainer.use_cpu: true``.

``launch([...], launcher="accelerate", accelerate_config=cfg)`` does the same through ``accelerate launch
--config_file cfg`` (its FSDP / DeepSpeed engines); :func:`cpu_accelerate_config` turns a shipped
``recipes/accelerate/*.yaml`` into its 2-process CPU twin. ``script=`` runs a Python file instead of the CLI:
``python tests/_multiproc.py train RECIPE OUT`` (this file) is a training driver that records, per rank, a
digest of the full weights after every step and every file it opened for writing (see :func:`_train_main`).

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
    return launch(cli_args, log_dir=log_dir, nproc=nproc, timeout=timeout, env=env)


REPO = Path(__file__).resolve().parents[1]


def cpu_accelerate_config(name: str, out_dir: Path, nproc: int = 2) -> Path:
    """``recipes/accelerate/<name>.yaml`` for ``nproc`` CPU processes: ``use_cpu: true``, no mixed precision."""
    import yaml

    config = yaml.safe_load((REPO / "recipes" / "accelerate" / f"{name}.yaml").read_text())
    config.update(use_cpu=True, num_processes=nproc, mixed_precision="no")
    out = Path(out_dir) / f"cpu_{name}.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config))
    return out


def launch(args: list[str], *, log_dir: Path, nproc: int = 2, timeout: float = 300,
           env: dict[str, str] | None = None, launcher: str = "torchrun", accelerate_config: Path | None = None,
           script: Path | None = None) -> MultiprocResult:
    """Run ``-m medix_r1.cli *args`` (or ``script *args``) in ``nproc`` processes with ``torchrun`` or
    ``accelerate launch --config_file accelerate_config``; each rank's output lands under ``log_dir``."""
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    run_env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1",
               "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    src = str(REPO / "src")
    run_env["PYTHONPATH"] = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH", "")) if p)
    target = [str(script)] if script else ["-m", "medix_r1.cli"]
    if launcher == "torchrun":
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "--log-dir", str(log_dir),
               "--redirects", "3", *target, *args]
    elif launcher == "accelerate":
        if accelerate_config is None:
            raise ValueError("launcher='accelerate' needs accelerate_config (see cpu_accelerate_config)")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config),
               "--num_processes", str(nproc), "--main_process_ip", "127.0.0.1", "--main_process_port",
               str(free_port()), "--log_dir", str(log_dir), "--tee", "3", *target, *args]
    else:
        raise ValueError(f"unknown launcher {launcher!r}: torchrun or accelerate")
    proc = subprocess.run(cmd, check=False, env=run_env, capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    codes = {int(r): int(c) for r, c in _EXITCODE.findall(output)}
    if proc.returncode == 0:
        codes = dict.fromkeys(range(nproc), 0)
    return MultiprocResult(proc.returncode, output, nproc, log_dir, codes)


# --------------------------------------------------------------------------------------------- training driver
def _full_weights_digest(model) -> str:
    """sha256 over every parameter's full value; collective under ZeRO-3 and FSDP2 (every rank calls it)."""
    import hashlib

    import torch

    params = sorted(model.named_parameters())
    digest = hashlib.sha256()

    def add(name: str, tensor) -> None:
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())

    if any(hasattr(p, "ds_id") for _, p in params):  # DeepSpeed ZeRO-3: gather the partitions
        import deepspeed

        with deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None):
            for name, p in params:
                add(name, p.data)
        return digest.hexdigest()
    from torch.distributed.tensor import DTensor

    for name, p in params:
        add(name, p.full_tensor() if isinstance(p, DTensor) else p)  # FSDP2 shards are DTensors
    return digest.hexdigest()


def _train_main(argv: list[str]) -> int:
    """``train RECIPE OUT [--resume] [--set KEY=VALUE ...]``: run_training with per-rank probes in OUT/../probe.

    ``probe/weights-rank<R>.jsonl``: ``{"step", "digest", "engine", "sharded"}`` after every optimizer step
    (``sharded``: the parameters are ZeRO-3 partitions or FSDP2 DTensors);
    ``probe/writes-rank<R>.json``: every file under OUT this process opened for writing (Python-level opens:
    what medix-r1, TRL and torch.save write; safetensors' Rust writer is not seen).
    """
    import argparse
    import atexit
    import json

    from transformers import TrainerCallback

    from medix_r1.train.launch import distributed_engine
    from medix_r1.train.run import run_training

    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["train"])
    ap.add_argument("recipe")
    ap.add_argument("out")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    opts = ap.parse_args(argv)
    out = Path(opts.out).resolve()
    probe = out.parent / "probe"
    probe.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    writes: list[str] = []

    def audit(event: str, args: tuple) -> None:
        if event != "open" or not isinstance(args[0], (str, os.PathLike)):
            return
        mode, flags = args[1], args[2] if len(args) > 2 else 0
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(
            (flags or 0) & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        path = os.path.abspath(os.fspath(args[0]))
        if writing and path.startswith(str(out) + os.sep):
            writes.append(os.path.relpath(path, out))

    sys.addaudithook(audit)
    atexit.register(lambda: (probe / f"writes-rank{rank}.json").write_text(json.dumps(sorted(set(writes)))))

    class WeightsProbe(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            from torch.distributed.tensor import DTensor

            sharded = any(hasattr(p, "ds_id") or isinstance(p, DTensor) for p in model.parameters())
            row = {"step": state.global_step, "digest": _full_weights_digest(model),
                   "engine": distributed_engine(args), "sharded": sharded}
            with open(probe / f"weights-rank{rank}.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(row) + "\n")

    run_training(opts.recipe, overrides=opts.overrides, output_dir=out, resume=opts.resume,
                 extra_callbacks=[WeightsProbe()], progress=False)
    return 0


if __name__ == "__main__":
    sys.exit(_train_main(sys.argv[1:]))
