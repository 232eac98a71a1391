"""medix-r1: open-ended medical reinforcement learning of vision-language models (MediX-R1), and its evaluation.

The package is organised by concern:

- ``medix_r1.data``     the canonical :class:`~medix_r1.data.schema.Sample`, loaders, validation, bundled data
- ``medix_r1.prompts``  the training template and the ONE completion parser
- ``medix_r1.models``   loading policies by hub id or path, offline factories (tiny VLMs, embedded demo policy)
- ``medix_r1.judge``    the LLM judge (OpenAI-compatible server or in-process model) and its verdict cache
- ``medix_r1.rewards``  format, modality, judge accuracy, embedding similarity, composite
- ``medix_r1.train``    TRL wiring for GRPO / DAPO / GSPO
- ``medix_r1.eval``     benchmark tasks, generate -> judge -> score, reports
"""

__version__ = "0.1.0"
