"""What every method group's contract builds on: the parameter base and the shared references."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from simpleaided.domain import names
from simpleaided.domain.models import RunId, StepNumber


def _check_workspace(value: str) -> str:
    return names.check_workspace_path(value)


WorkspacePath = Annotated[str, AfterValidator(_check_workspace)]


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
