"""How a question is shown to the model: the one prompt format shared by scoring and generation.

The teacher-forced pass scores ``render_prompt(prompt) + solution``; anchor evaluations generate from
exactly ``render_prompt(prompt)``. Keeping both on one function is what lets probe features (read at
the last prompt token) describe the prompt that generation really saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from evalcast.validation import check_config


@dataclass(frozen=True)
class PromptConfig:
    """How a prompt is rendered before its solution (and before generation)."""

    separator: str = "\n"
    """Put between prompt and solution, left out when the prompt already ends with whitespace (so GSM8K
    questions get a newline and HumanEval prompts, which end in one, get nothing)."""
    chat_template: bool = False
    """Render the prompt as a user turn with the tokenizer's chat template and the generation prompt
    appended; the solution is then the assistant turn."""
    system: str | None = None
    """Optional system message for the chat template."""

    def __post_init__(self) -> None:
        check_config(self)

    def key(self) -> dict[str, Any]:
        return {"separator": self.separator, "chat_template": self.chat_template, "system": self.system}


def render_prompt(prompt: str, tokenizer: Any = None, fmt: PromptConfig = PromptConfig()) -> str:
    """The exact text that precedes the solution (and that generation starts from)."""
    if fmt.chat_template:
        if tokenizer is None or getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("PromptConfig(chat_template=True) needs a tokenizer with a chat template")
        messages = ([{"role": "system", "content": fmt.system}] if fmt.system else []) + [
            {"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if prompt[-1:].isspace():
        return prompt
    return prompt + fmt.separator
