"""The hub route: a dataset split through ``datasets.load_dataset`` (read from its Arrow cache, images left
undecoded), or a repository's own files and image archive through ``huggingface_hub`` (downloaded once into
the hub cache, then read like a local copy).

Files go through ``huggingface_hub`` when a task names them (``source.files``) because ``datasets``' split
detection merges every file that looks like the split (PMC-VQA's ``test.csv``, ``test_2.csv`` and
``test_clean.csv`` have different columns).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medix_r1.eval.sources.base import DataUnavailable
from medix_r1.eval.sources.files import dataset_rows, glob_files
from medix_r1.eval.taskspec import TaskSpec

_GLOB_CHARS = "*?["


def _fix(spec: TaskSpec) -> str:
    return (f"download it on a machine with hub access and pass --data-dir {spec.name}=PATH (the dataset's "
            "folder, file or zip in its published layout)")


def download(repo: str, filename: str) -> Path:
    """One file of a dataset repository, from the hub cache (downloaded on first use)."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=repo, filename=filename, repo_type="dataset"))


def snapshot(repo: str, pattern: str) -> Path:
    """The repository's files matching ``pattern`` (at any depth), in a local snapshot folder (downloaded on
    first use; with ``HF_HUB_OFFLINE=1`` the cached snapshot)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id=repo, repo_type="dataset", allow_patterns=[pattern, f"*/{pattern}"]))


def repo_files(spec: TaskSpec, pattern: str) -> list[Path]:
    """Download the repository files matching ``pattern`` (a plain name is fetched directly)."""
    repo = spec.source.hub
    try:
        if any(ch in pattern for ch in _GLOB_CHARS):
            paths = glob_files(snapshot(repo, pattern), pattern)
            if not paths:
                raise DataUnavailable(f"task {spec.name}: {repo} has no file matching {pattern!r}",
                                      where=repo, fix=_fix(spec))
            return paths
        return [download(repo, pattern)]
    except DataUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - the hub client raises many types; say what to do instead
        raise DataUnavailable(f"task {spec.name}: cannot download {pattern!r} from {repo} "
                              f"({type(exc).__name__}: {str(exc)[:200]})", where=repo, fix=_fix(spec)) from None


def archive(spec: TaskSpec) -> Path:
    """The task's image archive, downloaded (once) from its repository."""
    paths = repo_files(spec, spec.source.archive)
    if len(paths) != 1:
        raise DataUnavailable(f"task {spec.name}: {spec.source.archive!r} matches {len(paths)} files of "
                              f"{spec.source.hub}; name one archive", where=spec.file or spec.name)
    return paths[0]


def dataset_split_rows(spec: TaskSpec, config: str | None) -> Iterator[dict]:
    src = spec.source
    try:
        import datasets

        ds = datasets.load_dataset(src.hub, config, split=src.split)
    except Exception as exc:  # noqa: BLE001 - the hub raises many types; say what to do instead
        raise DataUnavailable(
            f"task {spec.name}: cannot load {src.hub}" + (f" (config {config})" if config else "")
            + f" split {src.split} from the hub ({type(exc).__name__}: {str(exc)[:200]})",
            where=src.hub, fix=_fix(spec)) from None
    yield from dataset_rows(ds, f"{src.hub}" + (f"/{config}" if config else "") + f"[{src.split}]")


__all__ = ["archive", "dataset_split_rows", "download", "repo_files", "snapshot"]
