"""Prompts are data files beside this module; untrusted text goes only into <data> sections."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from service.llm.preambles import preamble

# A preview that contains "</data>" must not be able to close its own data section.
_CLOSE = "</data"
_CLOSE_ESCAPED = "<\\/data"
MAX_PREVIEW_CHARS = 4000


@cache
def template(name: str) -> Template:
    text = resources.files("service.llm").joinpath("prompts", f"{name}.md").read_text("utf-8")
    return Template(text)


def data(text: str) -> str:
    """Neutralise section markers inside untrusted text."""
    return text.replace(_CLOSE, _CLOSE_ESCAPED).replace(_CLOSE.upper(), _CLOSE_ESCAPED)


def render(name: str, **values: str) -> str:
    return template(name).substitute(values)


@dataclass(frozen=True)
class Task:
    """What the user asked for, as every prompt needs it."""

    query: str
    context: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    packages: tuple[str, ...] = ()

    def files_section(self) -> str:
        if not self.files:
            return "(no input files)"
        lines = []
        for name, meta in self.files.items():
            text = json.dumps(meta, default=str, ensure_ascii=False, separators=(",", ":"))
            if len(text) > MAX_PREVIEW_CHARS:
                text = text[:MAX_PREVIEW_CHARS] + "... (metadata truncated)"
            lines.append(f"{name}: {text}")
        return data("\n".join(lines))

    def generate_prompt(self) -> str:
        return render(
            "generate",
            packages=", ".join(self.packages) or "the Python standard library",
            preambles=preamble(self.files),
            files=self.files_section(),
            context=data(self.context or "(none)"),
            query=data(self.query),
        )


def system_prompt() -> str:
    return template("system").template
