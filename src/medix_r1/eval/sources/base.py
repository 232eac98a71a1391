"""The types every source module shares: what a load returns, a row that failed, and the error for data that
cannot be found or read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from medix_r1.data.schema import Sample
from medix_r1.errors import InputError
from medix_r1.eval.taskspec import TaskSpec


class DataUnavailable(InputError, RuntimeError):
    """A task's data cannot be found or read; the message says how to supply it."""


@dataclass(frozen=True)
class LoadIssue:
    """A row that could not become a sample. ``id`` is the row's id when known, else ``row-<n>``."""

    id: str
    where: str
    field: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.where} id={self.id}" + (f" field={self.field}" if self.field else "") + f": {self.message}"


@dataclass
class TaskData:
    """A task's samples in source order, plus the rows that failed (kept, to be counted as errors).

    ``rows_read`` is how many rows of the source were read (after ``source.filter``); ``expected_rows`` the
    task's ``rows:``; ``row_count_checked`` is false when ``--limit`` stopped the read early.
    """

    spec: TaskSpec
    samples: list[Sample] = field(default_factory=list)
    issues: list[LoadIssue] = field(default_factory=list)
    origin: str = ""
    rows_read: int = 0
    expected_rows: int | None = None
    row_count_checked: bool = False
    warnings: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples] + [i.id for i in self.issues]

    @property
    def n(self) -> int:
        return len(self.samples) + len(self.issues)

    @property
    def kind(self) -> str:
        if self.spec.kind != "auto":
            return self.spec.kind
        return "vision" if any(s.images for s in self.samples) else "text"

    @property
    def rows_differ(self) -> bool:
        """The full source was read and its row count is not the release's."""
        return self.row_count_checked and self.expected_rows is not None and self.rows_read != self.expected_rows

    def load_report(self) -> dict[str, Any]:
        """What the load did, for the run's manifest: origin, protocol, counts and warnings."""
        return {"origin": self.origin, "protocol": self.spec.protocol, "rows_read": self.rows_read,
                "expected_rows": self.expected_rows, "row_count_checked": self.row_count_checked,
                "rows_differ": self.rows_differ, "samples": len(self.samples), "bad_input": len(self.issues),
                "warnings": list(self.warnings)}
