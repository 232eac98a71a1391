"""The MediX training template: how a :class:`~medix_r1.data.schema.Sample` becomes chat messages.

One user turn (no system prompt by default) carries the instruction, ``Question:``, the image(s) and the
question text (docs/background.md §2). Images are ``{"type": "image"}`` placeholders in the message content, in
the order of ``sample.images``; the caller passes the decoded images beside the messages (TRL's ``image`` /
``images`` column, or the processor).

Templates are versioned: ``template.version`` is written into every results file and is part of cached
judgements, so a changed wording never mixes with old results. Change the text -> bump the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from medix_r1.data.schema import Sample
from medix_r1.modalities import MODALITY_TAGS
from medix_r1.registry import UnknownNameError, unknown_name_message

_DEFAULT_INSTRUCTION = (
    "Answer the medical question about the image. Reply in exactly this order and with nothing else: "
    "first one imaging-modality tag chosen from {tags}; then your step-by-step reasoning inside "
    "<{think}> </{think}> tags; then the final answer inside <answer> </answer> tags."
)
_DEFAULT_TEXT_INSTRUCTION = (
    "Answer the medical question. Reply in exactly this order and with nothing else: your step-by-step "
    "reasoning inside <{think}> </{think}> tags, then the final answer inside <answer> </answer> tags."
)


@dataclass(frozen=True)
class FewShotExample:
    """A worked example given as an earlier user/assistant exchange (text only)."""

    question: str
    completion: str


@dataclass(frozen=True)
class PromptTemplate:
    """A versioned training/eval prompt. All wording is configurable; defaults follow docs/background.md §2."""

    name: str = "medix"
    version: str = "medix-v1"
    instruction: str = _DEFAULT_INSTRUCTION
    text_instruction: str = _DEFAULT_TEXT_INSTRUCTION
    think_tag: str = "thinking"
    tags: tuple[str, ...] = MODALITY_TAGS
    system_prompt: str | None = None
    few_shot: tuple[FewShotExample, ...] = field(default_factory=tuple)
    question_label: str = "Question:"
    examples_repeat_instruction: bool = True
    """Whether every worked example's user turn repeats the instruction (else only the first one does).
    The instruction lists all 16 tags, so repeating it costs ~130 prompt tokens per example."""
    choices_label: str = "Choices:"

    def instruction_for(self, sample: Sample) -> str:
        text = self.instruction if sample.has_image or sample.modality else self.text_instruction
        return text.format(tags=", ".join(self.tags), think=self.think_tag)

    def question_text(self, sample: Sample) -> str:
        """The question, with MCQ options appended as ``Choices:`` lines ``A. ...`` (reference protocol)."""
        q = sample.question.strip()
        if sample.options:
            lines = "\n".join(f"{k}. {v}" for k, v in sample.options.items())
            q = f"{q}\n{self.choices_label}\n{lines}"
        return q

    def render(self, sample: Sample) -> list[dict[str, Any]]:
        """Chat messages for ``sample``; image placeholders stand where the images go.

        >>> from medix_r1.data.schema import Sample
        >>> msgs = PromptTemplate().render(Sample(id="1", question="Which organ?", answer="Liver",
        ...                                       images=["a.png"], modality="<CT_SCAN>"))
        >>> [c["type"] for c in msgs[-1]["content"]]
        ['text', 'image', 'text']
        """
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        for i, ex in enumerate(self.few_shot):
            lead = (f"{self.instruction.format(tags=', '.join(self.tags), think=self.think_tag)}\n"
                    if i == 0 or self.examples_repeat_instruction else "")
            messages.append({"role": "user", "content": [{"type": "text", "text": (
                f"{lead}{self.question_label} {ex.question}")}]})
            messages.append({"role": "assistant", "content": [{"type": "text", "text": ex.completion}]})
        content: list[dict[str, Any]] = [
            {"type": "text", "text": f"{self.instruction_for(sample)}\n{self.question_label}"}
        ]
        content.extend({"type": "image"} for _ in sample.images)
        content.append({"type": "text", "text": self.question_text(sample)})
        messages.append({"role": "user", "content": content})
        return messages

    def render_plain(self, sample: Sample) -> list[dict[str, str]]:
        """The same conversation with string contents and no image placeholders (text-only models, APIs)."""
        out = []
        for m in self.render(sample):
            text = ""
            for i, c in enumerate(m["content"]):
                piece = c["text"] if c["type"] == "text" else "<image>"
                if i:  # an image placeholder runs on into what follows; text parts are separate lines
                    text += " " if m["content"][i - 1]["type"] == "image" else "\n"
                text += piece
            out.append({"role": m["role"], "content": text})
        return out

    def with_overrides(self, **kwargs: Any) -> PromptTemplate:
        return replace(self, **kwargs)


# Worked examples for small demo policies (docs/background.md §9: a 135M model never produces the format from the
# instruction alone, but copies three worked examples). Their modality tags are deliberately ones the
# bundled data never uses, so the policy cannot score the modality reward by repeating an example's tag.
DEMO_FEW_SHOT: tuple[FewShotExample, ...] = (
    FewShotExample(
        "What structure is shown at the centre of this retinal image?",
        "<FUNDUS_PHOTOGRAPHY><thinking>A round bright area where the vessels converge is the optic disc."
        "</thinking><answer>Optic disc</answer>",
    ),
    FewShotExample(
        "Is there a polyp in this colon view?",
        "<ENDOSCOPY><thinking>The mucosa shows a raised rounded lesion on a stalk.</thinking>"
        "<answer>Yes</answer>",
    ),
    FewShotExample(
        "Which stain is used in this slide?",
        "<MICROSCOPY><thinking>Nuclei are blue-purple and cytoplasm pink, typical of routine staining."
        "</thinking><answer>Haematoxylin and eosin</answer>",
    ),
)

TEMPLATES: dict[str, PromptTemplate] = {
    "medix": PromptTemplate(),
    "medix-think": PromptTemplate(name="medix-think", version="medix-think-v1", think_tag="think"),
    # Only the first worked example repeats the instruction: 540 prompt tokens instead of 864 for the demo
    # policy, with as many well-formed samples (measured: 9/16 vs 7/16 at temperature 0.7, 48 new tokens).
    "medix-3shot": PromptTemplate(name="medix-3shot", version="medix-3shot-v2", few_shot=DEMO_FEW_SHOT,
                                  examples_repeat_instruction=False),
}


def get_template(name: str = "medix") -> PromptTemplate:
    """Look up a shipped template by name; an unknown name lists the valid ones."""
    if name not in TEMPLATES:
        raise UnknownNameError(unknown_name_message("prompt template", name, TEMPLATES))
    return TEMPLATES[name]
