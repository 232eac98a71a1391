"""The library's error types: what was wrong, where, and how to fix it.

Every expected failure raises a :class:`MedixError` subclass. The CLI (:mod:`medix_r1.cli`) prints one
message for it and exits with its ``exit_code``: 2 for a usage or input error, 3 for a service or budget
failure. Anything else is a bug and shows a traceback (always with ``-v``).

Usage::

    raise InputError("column 'problem' is missing", where="data/train.parquet", fix="rename your question "
                     "column to 'problem' or pass --set data.question_field=NAME")
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SERVICE = 3
EXIT_INTERRUPTED = 130


class MedixError(Exception):
    """Base of every expected failure. ``where`` names the file, row, key or flag; ``fix`` says what to do."""

    exit_code: int = EXIT_USAGE

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None):
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(what)

    def __str__(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text

    def __reduce__(self):
        # Errors cross process boundaries (DataLoader workers, datasets.map, accelerate ranks). The default
        # pickling calls ``cls(*args)``, which fails for subclasses whose __init__ takes other arguments
        # (SampleError(field, message), TaskConfigError(file, key, message)); rebuild without calling it.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls, args, state):
    err = cls.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class UsageError(MedixError):
    """A wrong flag, recipe key, name or value (exit 2)."""


class InputError(MedixError):
    """Bad input data: a missing file, a bad row, a wrong column, an unreadable image (exit 2)."""


class ServiceError(MedixError):
    """A service (judge, generator, model server) failed or cannot be reached (exit 3)."""

    exit_code = EXIT_SERVICE


class BudgetExceeded(ServiceError):
    """Too many failed calls within the error budget's window (exit 3)."""
