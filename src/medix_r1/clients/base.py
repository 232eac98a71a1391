"""What every chat client implements (:class:`ChatBackend`) and the error it raises (:class:`BackendError`).

Kept apart from the judge so the policy under evaluation and the judge use the same client code; the
judge package re-exports both names.
"""

from __future__ import annotations

import abc

from medix_r1.errors import ServiceError


class ChatBackend(abc.ABC):
    """Something that answers a chat: an OpenAI-compatible server or an in-process model."""

    model_name: str
    supports_choices: bool = False
    """True when :meth:`complete` takes ``choices=`` (pick the most likely of a few replies)."""
    prefers_few_shot: bool = False
    """True for small judges that need worked examples in the prompt."""

    @abc.abstractmethod
    async def complete(self, messages: list[dict], *, max_tokens: int, temperature: float = 0.0) -> str:
        """Return the assistant's reply text. Raises ``TimeoutError`` or :class:`BackendError` on failure.

        Backends with ``supports_choices`` also accept ``choices: Sequence[str] | None`` and then return
        one of them.
        """

    async def aclose(self) -> None:
        """Release connections or models."""

    async def check(self) -> None:
        """Raise :class:`BackendError` (saying how to fix it) when the backend cannot answer at all."""

    def describe(self) -> str:
        """A one-line description for logs and error messages (kind, model, URL)."""
        return f"{type(self).__name__}(model={self.model_name!r})"

    def how_to_fix(self) -> str:
        """What to tell a user whose judge keeps failing."""
        return "check the judge backend's logs"


class BackendError(ServiceError, RuntimeError):
    """A backend failed to produce a reply (HTTP error, refused connection, bad response body...)."""
