"""Clients for model servers, shared by the judge and the evaluated policy.

- :mod:`medix_r1.clients.openai`: :class:`~medix_r1.clients.openai.OpenAIChatBackend`, any OpenAI-compatible
  chat endpoint (``vllm serve``, SGLang, ``transformers serve``, a hosted API).
"""
