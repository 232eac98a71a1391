"""Test and benchmark helpers that ship with the package, so other projects' tests can use them too.

- :mod:`medix_r1.testing.openai_stub`: a scripted OpenAI-compatible chat server on 127.0.0.1
  (:class:`~medix_r1.testing.openai_stub.StubChatServer`) with latency, capacity and fault injection.
"""

from medix_r1.testing.openai_stub import StubChatServer, StubFault, refused_url, stub_subprocess

__all__ = ["StubChatServer", "StubFault", "refused_url", "stub_subprocess"]
