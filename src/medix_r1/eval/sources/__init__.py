"""Task data: read a task's rows (hub dataset, a repository's files and image archive, or a local copy in the
source's own published layout) and map them to canonical :class:`~medix_r1.data.schema.Sample` objects.

Modules, one concern each:

- :mod:`.locate`: where the local data is (``--data-dir TASK=PATH``, ``source.path``, ``$source.env``);
- :mod:`.files`: table files (Parquet, JSON Lines also in ``.json``, JSON lists, JSON keyed by id, CSV/TSV,
  ``save_to_disk`` folders), read lazily;
- :mod:`.archives`: folders and zip archives read in place; lazy image references;
- :mod:`.hub`: ``datasets.load_dataset`` splits, and repository files / image archives through
  ``huggingface_hub`` (cached);
- :mod:`.mapping`: source columns -> :class:`Sample` (templates, options, answers, modality);
- :mod:`.loader`: :func:`load_task_data` and :func:`load_tasks`.

A local path replaces the download and is read in the layout the source publishes: a file, a folder (per
config sub-folder and per split file, as the hub stores them; the task's ``source.files`` glob), or a zip;
images beside the data (under ``source.image_root``) or inside the task's image archive (``source.archive``).
Either way the rows pass through the same mapping code, so a tiny fixture in the real layout tests the real
loader.

Loading is lazy and bounded: rows are read and mapped one by one (``limit`` stops the read), and no image is
decoded; a sample's images are paths or lazy references (an archive member, an image cell of the memory-mapped
Arrow table) that :meth:`Sample.load_images` decodes at generation time. An unreadable, missing or oversized
image (PIL's decompression-bomb limit) is then that sample's ``bad_input``.

A row that cannot become a sample (empty question, a template whose columns are missing, an MCQ answer that
does not resolve to a shown option...) becomes a :class:`LoadIssue`: evaluation writes it as a ``bad_input``
row and counts it. It is never silently dropped.

Protocols (the API ``--protocol paper`` uses)::

    from medix_r1.eval.sources import load_tasks
    tasks = load_tasks("paper", data_dirs, limit=None, protocol="paper")   # list[TaskData]

``protocol="paper"`` gives each task's ``paper:`` variant (:meth:`TaskSpec.for_protocol`): the release eval
kit's sources (``sahalshajim/medix-eval-sets`` for PubMedQA, PMC-VQA, PMC-VQA-hard and MIMIC-CXR;
USMLE-SA's ``train`` split) and, where the source defines them, its question and reference texts. What a
:class:`TaskData` gives the protocol side:

- ``spec`` (its ``protocol`` is ``"paper"`` or ``"default"``), ``samples``, ``issues`` (bad inputs);
- per sample: ``question`` (the text without the choices; the PubMedQA paper variant's question already holds
  its fixed ``Choices:`` block, with ``options`` None), ``options`` (letter -> text, empty options left out,
  letters as published), ``answer`` (for MCQ the option text), ``metadata["answer_letter"]``, ``images``
  (MMMU's paper variant: ``image_1`` only, as the release shows), ``answer_type``, ``modality``;
- ``load_report()``: origin, protocol, rows read, the release's row count (``rows:``) and whether they
  differ, bad inputs and warnings.
"""

from medix_r1.eval.sources.archives import ArchiveMember, ArrowImage, ImageResolver, LazyImage, ZipTree
from medix_r1.eval.sources.base import DataUnavailable, LoadIssue, TaskData
from medix_r1.eval.sources.loader import RawRow, iter_raw_rows, load_task_data, load_tasks
from medix_r1.eval.sources.locate import resolve_data_path
from medix_r1.eval.sources.mapping import guess_modality, map_row, render

__all__ = ["ArchiveMember", "ArrowImage", "DataUnavailable", "ImageResolver", "LazyImage", "LoadIssue", "RawRow",
           "TaskData", "ZipTree", "guess_modality", "iter_raw_rows", "load_task_data", "load_tasks", "map_row",
           "render", "resolve_data_path"]
