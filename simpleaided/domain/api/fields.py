"""The constrained values of the wire, each written once for both sides of the contract.

A type here carries its rule as JSON Schema keywords (``pattern``, ``maxLength``, ``minimum``...,
from the constants of ``names``), which ``rpc.discover`` publishes and pydantic enforces, and
as the check that says in words what is wrong (``names.check_*``), which runs first so that its
words, not pydantic's, reach the user. What no pattern can say (a length in UTF-8 bytes, NFC,
what is on disk) the check alone enforces, and the ``description`` tells.

``title`` names what a value is ("run id"), ``examples`` shows one: the words of an invalid
params error are made of them (``invalid.py``), so they read as a noun after "a"/"an".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from simpleaided.domain import models, names
from simpleaided.domain.errors import InvalidInput

# On a field's schema: a value that is never given back (passphrases, secret values), and
# so never repeated in an error either.
SECRET: dict[str, Any] = {"writeOnly": True}


class Unquoted:
    """Marks a param whose value an error never repeats though it is no secret itself: a
    secret's name, where a secret pasted by mistake would otherwise be shown back."""


UNQUOTED = Unquoted()


def checked(check: Callable[[str], Any]) -> BeforeValidator:
    """Run ``check`` on text before pydantic's own constraints (its words say what is wrong;
    the pattern behind it is a backstop that never fires first); a value that is not text
    goes on to pydantic's type check untouched."""

    def validate(value: object) -> object:
        return check(value) if isinstance(value, str) else value

    return BeforeValidator(validate)


def no_nul(value: str) -> str:
    """``value`` if it holds no NUL (which no file, program or C string can take)."""
    if "\x00" in value:
        raise InvalidInput("must not contain a NUL character")
    return value


RunId = Annotated[
    str,
    Field(
        title="run id",
        description="the UTC time the run was created, to the millisecond, then 8 hex digits",
        pattern=names.RUN_ID_PATTERN,
        examples=[names.RUN_ID_EXAMPLE],
    ),
    checked(names.check_run_id),
]
StepName = Annotated[
    str,
    Field(
        title="step name",
        description="1 to 64 of a-z 0-9 _ -, starting with a letter or digit",
        pattern=names.STEP_NAME_PATTERN,
        examples=["code"],
    ),
    checked(names.check_step_name),
]
StepNumber = Annotated[
    int,
    Field(
        title="step number",
        description="a step's place in its run, from 1, in the order the steps were created",
        ge=1,
        le=names.MAX_STEPS,
    ),
]
WorkspacePath = Annotated[
    str,
    Field(
        title="workspace path",
        description=(
            "an absolute path with no '..' component and no NUL, not / itself, at most "
            f"{names.MAX_WORKSPACE_PATH_BYTES} bytes in UTF-8; the daemon also refuses a path "
            "in /proc, /sys or /dev, resolves symlinks, and checks on disk that the folder "
            "exists, is yours, is not writable by others and its real path is UTF-8 text"
        ),
        pattern=names.WORKSPACE_PATH_PATTERN,
        max_length=names.MAX_WORKSPACE_PATH_BYTES,
        examples=["/home/me/project"],
    ),
    checked(lambda value: names.check_workspace_folder(names.check_workspace_path(value))),
]
ArtifactName = Annotated[
    str,
    Field(
        title="artifact name",
        description=(
            "one file name: no '/' or '\\', not starting with a dot, no control, format or "
            f"line-separator character (Unicode Cc, Cf, Zl, Zp), at most "
            f"{names.MAX_ARTIFACT_NAME_BYTES} bytes in UTF-8, in Unicode NFC form"
        ),
        pattern=names.ARTIFACT_NAME_PATTERN,
        min_length=1,
        max_length=names.MAX_ARTIFACT_NAME_BYTES,
        examples=[names.ARTIFACT_NAME_EXAMPLE],
    ),
    checked(names.check_artifact_name),
]
Title = Annotated[
    str,
    Field(
        description="any text without NUL",
        pattern=names.NO_NUL_PATTERN,
        min_length=1,
        max_length=models.MAX_TITLE_CHARS,
    ),
    checked(no_nul),
]
ErrorMessage = Annotated[
    str,
    Field(
        description="any text without NUL",
        pattern=names.NO_NUL_PATTERN,
        min_length=1,
        max_length=models.MAX_ERROR_CHARS,
    ),
    checked(no_nul),
]
