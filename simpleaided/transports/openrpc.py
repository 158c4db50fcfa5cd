"""The OpenRPC document of ``rpc.discover``, generated from the methods' pydantic models.

A param's schema carries the rules the daemon enforces (``pattern``, ``maxLength``, bounds;
``description`` for what no keyword says), from the same types that validate it (``api.fields``).
Patterns are ECMA-262 regular expressions, as JSON Schema reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from simpleaided import __version__
from simpleaided.domain.api import ContractSchema

if TYPE_CHECKING:
    from simpleaided.transports.rpc import Method

OPENRPC_VERSION = "1.3.2"
_REF = "#/components/schemas/{model}"


def openrpc_document(methods: Sequence[Method]) -> dict[str, Any]:
    """An OpenRPC document describing ``methods`` (params by name, results, schemas)."""
    models = sorted({m.params for m in methods}, key=lambda m: m.__name__)
    keyed, defs = models_json_schema(
        [(model, "validation") for model in models],
        ref_template=_REF,
        by_alias=True,
        schema_generator=ContractSchema,
    )
    schemas: dict[str, Any] = dict(defs.get("$defs", {}))
    described = []
    for method in sorted(methods, key=lambda m: m.name):
        params_schema = schemas.get(method.params.__name__, {})
        required = set(params_schema.get("required", []))
        params = [
            {"name": name, "required": name in required, "schema": schema}
            for name, schema in params_schema.get("properties", {}).items()
        ]
        result_schema = TypeAdapter(method.result).json_schema(
            ref_template=_REF, by_alias=True, mode="serialization"
        )
        schemas.update(result_schema.pop("$defs", {}))
        described.append(
            {
                "name": method.name,
                "summary": method.summary,
                "paramStructure": "by-name",
                "params": params,
                "result": {"name": "result", "schema": result_schema},
            }
        )
    del keyed
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": "simpleaided", "version": __version__},
        "methods": described,
        "components": {"schemas": schemas},
    }
