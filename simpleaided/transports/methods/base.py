"""What the method groups share: a list that declares each method next to its handler, and
the shape of a probed status section."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from simpleaided.domain import api
from simpleaided.transports.rpc import Method

Handler = Callable[..., Any]


class MethodList(list[Method]):
    """A group's methods, in the order declared."""

    def add(
        self, name: str, params: type[api.Params], result: Any, summary: str
    ) -> Callable[[Handler], Handler]:
        """Declare the method ``name`` served by the decorated ``handler(params, connection)``."""

        def register(handler: Handler) -> Handler:
            self.append(Method(name, summary, params, result, handler))
            return handler

        return register


class Probed(Protocol):
    """A status section kept by periodic probes (the database, the LLM backends)."""

    def section(self) -> dict[str, Any]: ...

    async def probe(self) -> dict[str, Any]: ...
