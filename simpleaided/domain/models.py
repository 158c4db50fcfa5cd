"""The records of the run store (format v1): what ``metadata.json`` and ``step.json`` hold.

Keys are camelCase on disk and on the wire, because the store is shared with SimpleAide's
TypeScript side. Unknown keys written by a newer writer are kept, never dropped.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from simpleaided.domain import clock, names

SCHEMA_VERSION: Literal[1] = 1
MAX_TITLE_CHARS = 500
MAX_ERROR_CHARS = 10_000
MAX_PID = 2**22  # the kernel's ceiling for pid_max (PID_MAX_LIMIT on 64-bit Linux)


class RunStatus(StrEnum):
    """Where a run is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class StepStatus(StrEnum):
    """Where a step is in its life."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"


# Listed for a run whose metadata.json cannot be read or parsed; never written to disk.
CORRUPT = "corrupt"


def _normalize_timestamp(value: str) -> str:
    try:
        return clock.format_ms(clock.parse_ms(value))
    except ValueError as exc:
        raise ValueError(f"not an ISO-8601 timestamp: {value[:40]!r}") from exc


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL")
    return value


def _check_run_id(value: str) -> str:
    return names.check_run_id(value)


def _check_step_name(value: str) -> str:
    return names.check_step_name(value)


Timestamp = Annotated[str, AfterValidator(_normalize_timestamp)]
Title = Annotated[str, Field(min_length=1, max_length=MAX_TITLE_CHARS), AfterValidator(_check_text)]
ErrorMessage = Annotated[
    str, Field(min_length=1, max_length=MAX_ERROR_CHARS), AfterValidator(_check_text)
]
RunId = Annotated[str, AfterValidator(_check_run_id)]
StepName = Annotated[str, AfterValidator(_check_step_name)]
StepNumber = Annotated[int, Field(ge=1, le=names.MAX_STEPS)]
OwnerPid = Annotated[int, Field(gt=0, le=MAX_PID, strict=True)]  # strict: `true` is no pid
OwnerStartTime = Annotated[int, Field(ge=0, strict=True)]


class StoreRecord(BaseModel):
    """Base of the on-disk records: camelCase aliases, unknown keys preserved, immutable."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    def to_json_dict(self) -> dict[str, Any]:
        """The record as JSON-safe camelCase data; absent optional fields are omitted."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RunMetadata(StoreRecord):
    """The contents of ``<runId>/metadata.json``."""

    schema_version: Literal[1] = SCHEMA_VERSION
    id: RunId
    title: Title | None = None
    status: RunStatus
    started_at: Timestamp
    completed_at: Timestamp | None = None
    updated_at: Timestamp
    error_message: ErrorMessage | None = None
    step_count: Annotated[int, Field(ge=0, le=names.MAX_STEPS)] = 0
    # The process driving the run; when it is gone the daemon abandons the run.
    owner_pid: OwnerPid | None = None
    # When that process started (``/proc/<pid>/stat`` field 22, clock ticks after boot, kept
    # raw and compared exactly): a later process given the same pid is not the owner.
    owner_start_time: OwnerStartTime | None = None


class StepMetadata(StoreRecord):
    """The contents of ``<runId>/NN_<name>/step.json``."""

    number: StepNumber
    name: StepName
    status: StepStatus
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    error_message: ErrorMessage | None = None

    @property
    def dir_name(self) -> str:
        """The step's folder name, ``NN_<name>``."""
        return names.step_dir_name(self.number, self.name)
