"""What every method group's contract builds on: the parameter base and the shared references."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import CoreSchema

from simpleaided.domain.api.fields import RunId, StepNumber
from simpleaided.domain.api.fields import WorkspacePath as WorkspacePath


class ContractSchema(GenerateJsonSchema):
    """JSON Schema as the contract publishes it: a field's ``title`` is the one its type
    gives ("run id"), never one made up from its name ("Runid")."""

    def field_title_should_be_set(self, schema: CoreSchema) -> bool:
        return False


@cache
def params_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a parameter model, as ``rpc.discover`` publishes it (refs local)."""
    return model.model_json_schema(by_alias=True, schema_generator=ContractSchema)


class Params(BaseModel):
    """Base of every parameter object: camelCase names, unknown names refused."""

    model_config = ConfigDict(alias_generator=to_camel, extra="forbid", frozen=True)


class NoParams(Params):
    """A method that takes no parameters."""


class ScopeParams(Params):
    """Optionally restrict an answer to one workspace."""

    workspace: WorkspacePath | None = None


class RunRef(Params):
    run_id: RunId


class StepRef(RunRef):
    step: StepNumber


class Unsubscribed(BaseModel):
    """Whether there was a subscription to end."""

    unsubscribed: bool
