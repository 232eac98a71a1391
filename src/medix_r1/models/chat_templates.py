"""ChatML chat templates for the models medix-r1 builds offline.

SmolLM2-Instruct and Qwen were both trained on ChatML (``<|im_start|>role\\n...<|im_end|>``). The templates
here render that format and accept both plain-string contents and content lists of ``{"type": "text"}`` and
``{"type": "image"}`` parts (the format of :mod:`medix_r1.prompts.template`). An image part becomes the
model's image placeholder, which its processor then expands into the right number of image tokens:

- Qwen2/2.5/3-VL: ``<|vision_start|><|image_pad|><|vision_end|>``;
- Idefics3 (the embedded demo policy): ``<image>``;
- text-only SmolLM2: images are dropped.

When the conversation has no system turn, a default system prompt is inserted, as the models' own
templates do (SmolLM2 was trained with its default system prompt, so keeping it keeps the LM in
distribution).
"""

from __future__ import annotations

SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
QWEN_SYSTEM = "You are a helpful assistant."

QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
QWEN_VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"
IDEFICS3_IMAGE = "<image>"


def chatml_template(default_system: str, image: str = "", video: str = "") -> str:
    """A Jinja chat template for ChatML with content lists; ``image``/``video`` replace media parts."""
    nl = "{{ '\\n' }}"
    return (
        "{%- if messages and messages[0]['role'] != 'system' -%}"
        f"{{{{ '<|im_start|>system\\n' }}}}{default_system}{{{{ '<|im_end|>\\n' }}}}"
        "{%- endif -%}"
        "{%- for message in messages -%}"
        "{{ '<|im_start|>' + message['role'] }}" + nl +
        "{%- if message['content'] is string -%}{{ message['content'] }}"
        "{%- else -%}{%- for part in message['content'] -%}"
        "{%- if part['type'] == 'text' -%}{{ part['text'] }}"
        f"{{%- elif part['type'] in ('image', 'image_url') -%}}{image}"
        f"{{%- elif part['type'] == 'video' -%}}{video}"
        "{%- endif -%}{%- endfor -%}{%- endif -%}"
        "{{ '<|im_end|>' }}" + nl +
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant' }}" + nl + "{%- endif -%}"
    )


SMOLLM2_TEMPLATE = chatml_template(SMOLLM2_SYSTEM)
IDEFICS3_SMOLLM2_TEMPLATE = chatml_template(SMOLLM2_SYSTEM, image=IDEFICS3_IMAGE)
QWEN_VL_TEMPLATE = chatml_template(QWEN_SYSTEM, image=QWEN_IMAGE, video=QWEN_VIDEO)
