"""The ``terminals.*`` contract: shells on PTYs hosted by the daemon (README: Terminals on
the wire).

Output travels as base64 with byte offsets into the terminal's whole output, so a client knows
what it has (``terminal.output``), and acknowledges what it has consumed (``terminals.ack``).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator

from simpleaided.domain import names
from simpleaided.domain.api.base import Params
from simpleaided.domain.api.fields import checked
from simpleaided.domain.errors import InvalidInput

TERMINAL_ID_PATTERN = r"^[0-9a-f]{8}$"
TerminalId = Annotated[
    str,
    Field(
        title="terminal id",
        description="8 hex digits, as terminals.create answered",
        pattern=TERMINAL_ID_PATTERN,
        examples=["0f3a9c21"],
    ),
]
MAX_COLS = 1000
MAX_ROWS = 500
Cols = Annotated[int, Field(ge=1, le=MAX_COLS)]
Rows = Annotated[int, Field(ge=1, le=MAX_ROWS)]
MAX_NAME_CHARS = 64
MAX_ARGS = 256
MAX_ARG_CHARS = 4096
MAX_ENV_ENTRIES = 256
MAX_ENV_VALUE_CHARS = 32768
MAX_PATH_CHARS = 4096
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
# Not blank (some character other than a space), not starting with '-', none of the refused
# characters of the BMP. Not an id's look-alike: no pattern without lookahead says that
# shortly, so ``check_terminal_name`` alone does.
_SPACE, _REFUSED = names.SPACE_RANGES, names.REFUSED_RANGES
TERMINAL_NAME_PATTERN = (
    rf"^(?:[^-{_SPACE}{_REFUSED}]|[{_SPACE}]+[^{_SPACE}{_REFUSED}])[^{_REFUSED}]*$"
)
# Signals a client may send: the ones a terminal user sends by name. ``HUP`` hangs up, then
# escalates to TERM and KILL if the program lives on (``terminals.kill``).
SignalName = Literal[
    "HUP", "INT", "QUIT", "TERM", "KILL", "USR1", "USR2", "CONT", "STOP", "TSTP", "WINCH"
]


def check_terminal_name(value: str) -> str:
    """``value`` if it may name a terminal; ``InvalidInput`` otherwise."""
    if not value.strip():
        raise InvalidInput("a terminal's name cannot be blank")
    if value.startswith("-"):
        raise InvalidInput("a terminal's name cannot start with '-' (it would read as an option)")
    if re.fullmatch(TERMINAL_ID_PATTERN.strip("^$"), value):
        raise InvalidInput(f"{value!r} looks like a terminal's id: choose a name that does not")
    bad = names.refused_character(value)
    if bad is not None:
        raise InvalidInput(
            f"a terminal's name cannot hold U+{ord(bad):04X} (a control or format character)"
        )
    return value


def _check_text(value: str) -> str:
    if "\x00" in value:
        raise InvalidInput("NUL cannot be passed to a program (arguments, environment, folder)")
    return value


def _check_cwd(value: str) -> str:
    _check_text(value)
    if not value.startswith("/"):
        raise InvalidInput(f"the folder must be an absolute path, not {names.quoted(value)}")
    return value


def _check_env_name(value: str) -> str:
    if not re.fullmatch(ENV_NAME_PATTERN, value):
        raise InvalidInput(
            f"{names.quoted(value)} is not an environment variable name (expected 1 to 128 of "
            "A-Z a-z 0-9 _, not starting with a digit, like PATH)"
        )
    return value


TerminalName = Annotated[
    str,
    Field(
        title="terminal name",
        description=(
            "any text that is not blank, does not start with '-', holds no control or format "
            "character and does not look like a terminal id (8 hex digits)"
        ),
        pattern=TERMINAL_NAME_PATTERN,
        min_length=1,
        max_length=MAX_NAME_CHARS,
        examples=["build"],
    ),
    checked(check_terminal_name),
]
_NO_NUL = Field(pattern=names.NO_NUL_PATTERN, description="any text without NUL")
Argument = Annotated[str, _NO_NUL, Field(max_length=MAX_ARG_CHARS), checked(_check_text)]
EnvValue = Annotated[str, _NO_NUL, Field(max_length=MAX_ENV_VALUE_CHARS), checked(_check_text)]
EnvName = Annotated[
    str,
    Field(title="environment variable name", pattern=ENV_NAME_PATTERN, examples=["PATH"]),
    checked(_check_env_name),
]
# Only names of the pattern: ``patternProperties`` alone would let any other name through.
Environment = Annotated[
    dict[EnvName, EnvValue],
    Field(max_length=MAX_ENV_ENTRIES, json_schema_extra={"additionalProperties": False}),
]
Folder = Annotated[
    str,
    Field(
        title="folder path",
        description="an absolute path without NUL",
        pattern=r"^/[^\x00]*$",
        min_length=1,
        max_length=MAX_PATH_CHARS,
        examples=["/home/me/project"],
    ),
    checked(_check_cwd),
]


class CreateTerminalParams(Params):
    cwd: Folder | None = None  # default: the user's home
    argv: list[Argument] | None = Field(None, min_length=1, max_length=MAX_ARGS)
    env: Environment | None = None
    name: TerminalName | None = None
    cols: Cols = 80
    rows: Rows = 24

    @model_validator(mode="after")
    def _program_named(self) -> Self:
        if self.argv is not None and not self.argv[0]:
            raise InvalidInput("argv[0], the program to run, cannot be empty")
        return self


class TerminalRef(Params):
    id: TerminalId


class AttachParams(TerminalRef):
    cols: Cols | None = None
    rows: Rows | None = None
    read_only: bool = False


class InputParams(TerminalRef):
    data: str | None = Field(
        None, description="bytes to type, base64", json_schema_extra={"contentEncoding": "base64"}
    )
    text: str | None = Field(None, description="text to type (sent as UTF-8)")

    @model_validator(mode="after")
    def _one_kind(self) -> Self:
        if (self.data is None) == (self.text is None):
            raise InvalidInput("give exactly one of data (base64) and text")
        return self


class ResizeParams(TerminalRef):
    cols: Cols
    rows: Rows


class AckParams(TerminalRef):
    offset: int = Field(ge=0)


class KillParams(TerminalRef):
    signal: SignalName = "HUP"
    remove: bool = False  # take it off the list once it has exited


class RenameParams(TerminalRef):
    name: TerminalName


class TerminalCreated(BaseModel):
    id: str
    name: str
    pid: int


class ExitStatus(BaseModel):
    code: int | None  # the exit code, or None when a signal ended it
    signal: str | None  # "SIGKILL"


class TerminalInfo(BaseModel):
    id: str
    name: str
    pid: int
    argv: list[str]
    cwd: str
    createdAt: str
    cols: int
    rows: int
    attached: int  # clients attached now
    readOnly: int  # of which read-only
    exited: ExitStatus | None


class Attached(BaseModel):
    """``terminals.attach``: what to show first; live output follows from ``offset``."""

    replay: str  # base64: the scrollback from ``start``, then the modes in force
    start: int
    offset: int
    cols: int
    rows: int
    readOnly: bool
    exited: ExitStatus | None


class Done(BaseModel):
    """An empty result: the call was applied."""
