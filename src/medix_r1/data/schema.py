"""The one canonical sample type of medix-r1, shared by training and evaluation.

Every loader turns its source format into :class:`Sample`; everything downstream (prompt rendering, rewards,
eval tasks) sees only this type. Images stay lazy: a sample holds paths, references to a table's images
(:class:`~medix_r1.data.table_images.TableImage`), bytes or PIL images, and :meth:`Sample.load_images`
reads and decodes them (to RGB) when they are needed.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from medix_r1.errors import InputError
from medix_r1.modalities import normalize_tag

if TYPE_CHECKING:
    import PIL.Image

AnswerType = Literal["open", "closed", "mcq"]
ANSWER_TYPES: tuple[str, ...] = ("open", "closed", "mcq")
ImageLike = Union[str, Path, bytes, "PIL.Image.Image"]  # PIL is imported lazily (only for type checkers here)

_CLOSED_ANSWERS = frozenset({"yes", "no"})


class SampleError(InputError, ValueError):
    """A sample field is missing or invalid. ``field`` names it; loaders add file, row and id."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class Sample:
    """One medical question with its free-form reference answer.

    ``modality`` is one of the 16 tags in :data:`medix_r1.modalities.MODALITY_TAGS` (canonical ``<TAG>``
    spelling) or ``None`` for text-only questions. ``options`` maps option letters to option texts for
    ``mcq`` samples; ``answer`` is then the option *text* (the reference protocol) and
    ``metadata["answer_letter"]`` the letter when known.
    """

    id: str
    question: str
    answer: str
    images: list[ImageLike] = field(default_factory=list)
    modality: str | None = None
    answer_type: AnswerType = "open"
    options: dict[str, str] | None = None
    source: str = ""
    split: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.id = str(self.id)
        if not self.id.strip():
            raise SampleError("id", "is empty")
        if not isinstance(self.question, str) or not self.question.strip():
            raise SampleError("question", "is empty")
        if not isinstance(self.answer, str) or not self.answer.strip():
            raise SampleError("answer", "is empty")
        if self.modality is not None and self.modality != "":
            tag = normalize_tag(self.modality, brackets=False)
            if tag is None:
                raise SampleError("modality", f"unknown modality tag {self.modality!r} (see medix_r1.modalities)")
            self.modality = tag
        else:
            self.modality = None
        if self.answer_type not in ANSWER_TYPES:
            raise SampleError("answer_type", f"must be one of {', '.join(ANSWER_TYPES)}, got {self.answer_type!r}")
        if self.answer_type == "mcq" and not self.options:
            raise SampleError("options", "an mcq sample needs options")
        if self.options is not None:
            if isinstance(self.options, (list, tuple)):
                self.options = {chr(ord("A") + i): str(o) for i, o in enumerate(self.options)}
            if not isinstance(self.options, dict) or not self.options:
                raise SampleError("options", "must be a mapping of letters to option texts, or a list")
        if not isinstance(self.images, list):
            self.images = [self.images]

    @property
    def has_image(self) -> bool:
        return bool(self.images)

    @staticmethod
    def infer_answer_type(answer: str, options: Any = None) -> AnswerType:
        """``mcq`` when there are options, ``closed`` for a yes/no answer, else ``open``."""
        if options:
            return "mcq"
        return "closed" if answer.strip().strip(".").lower() in _CLOSED_ANSWERS else "open"

    def load_images(self) -> list[PIL.Image.Image]:
        """Decode every image to an RGB ``PIL.Image``. Raises :class:`SampleError` naming the bad one."""
        return [load_image(img, field=f"images[{i}]") for i, img in enumerate(self.images)]

    def reference_tagged(self) -> str:
        """The reference in the MediX training layout: ``"<TAG> answer"`` (just the answer when text-only)."""
        return f"{self.modality} {self.answer}" if self.modality else self.answer

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (image paths as strings; in-memory images are left out)."""
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "image": [str(i) for i in self.images if isinstance(i, (str, Path))],
            "modality": self.modality,
            "answer_type": self.answer_type,
            "options": self.options,
            "source": self.source,
            "split": self.split,
            "metadata": self.metadata,
        }


def load_image(img: ImageLike, field: str = "image") -> PIL.Image.Image:
    """Open a path, bytes, a ``{"bytes":..., "path":...}`` dict (``datasets`` layout) or a PIL image as RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(img, Image.Image):
            out = img
        elif isinstance(img, dict):
            if img.get("bytes"):
                out = Image.open(io.BytesIO(img["bytes"]))
            elif img.get("path"):
                out = Image.open(img["path"])
            else:
                raise SampleError(field, "image dict has neither bytes nor path")
        elif isinstance(img, (bytes, bytearray)):
            out = Image.open(io.BytesIO(img))
        elif isinstance(img, (str, Path)):
            path = Path(img)
            if not path.is_file():
                raise SampleError(field, f"image file not found: {path}")
            out = Image.open(path)
        elif callable(getattr(img, "read_bytes", None)):
            # A lazy reference (a zip member, a cell of a hub table): read only now, when it is decoded.
            out = Image.open(io.BytesIO(img.read_bytes()))
        else:
            raise SampleError(field, f"unsupported image value of type {type(img).__name__}")
        out.load()
        return out.convert("RGB") if out.mode != "RGB" else out
    except SampleError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        # DecompressionBombError (an image over PIL's pixel limit) is not an OSError: without it here one
        # oversized image would abort a whole eval phase instead of failing its own sample.
        raise SampleError(field, f"cannot decode image {str(img)[:120]!r}: {exc}") from exc
