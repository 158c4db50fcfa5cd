"""``llm.*``: the LLM backends, as last probed or probed now."""

from __future__ import annotations

from typing import Any

from simpleaided.domain import api
from simpleaided.domain.status import LlmSection
from simpleaided.transports.methods.base import MethodList, Probed
from simpleaided.transports.rpc import Method


def llm_methods(llm: Probed) -> list[Method]:
    """Every ``llm.*`` method."""
    methods = MethodList()
    add = methods.add

    @add("llm.status", api.NoParams, LlmSection, "The LLM backends, last probe.")
    def llm_status(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return llm.section()

    @add("llm.probe", api.NoParams, LlmSection, "Probe every LLM backend now.")
    async def llm_probe(p: api.NoParams, conn: Any) -> dict[str, Any]:
        return await llm.probe()

    return methods
