"""Prompts: the versioned MediX training template and the one completion parser."""

from medix_r1.prompts.parser import ParsedCompletion, clean_answer, parse_completion, squeeze_tag_whitespace
from medix_r1.prompts.template import DEMO_FEW_SHOT, TEMPLATES, FewShotExample, PromptTemplate, get_template

__all__ = ["DEMO_FEW_SHOT", "TEMPLATES", "FewShotExample", "ParsedCompletion", "PromptTemplate", "clean_answer",
           "get_template", "parse_completion", "squeeze_tag_whitespace"]
