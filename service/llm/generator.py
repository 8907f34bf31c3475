"""Generation: query + context + file metadata -> a first script."""

from __future__ import annotations

from service.llm.client import LLMClient, UsageMeter
from service.llm.extract import extract_code
from service.llm.prompts import Task, system_prompt


async def generate_code(llm: LLMClient, meter: UsageMeter, task: Task) -> str:
    answer = await llm.complete(system_prompt(), task.generate_prompt(), meter)
    return extract_code(answer)
