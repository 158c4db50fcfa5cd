"""The closed sets of words the daemon, its configuration and its wire contract share.

Each is named once here and imported wherever it is used, so that the config, the status
document, the API models and the services cannot come to spell one word two ways.
"""

from __future__ import annotations

from typing import Literal

EnvProfile = Literal["DEV", "PROD"]
"""The active profile: which database the daemon uses, and whether writes are allowed."""

VaultState = Literal["uninitialized", "locked", "unlocked"]
"""The vault: no vault file yet, a file whose key is not in memory, or one that is."""

DbKind = Literal["sqlite", "postgres"]
"""The kind of database a profile names."""

LlmKind = Literal["ollama", "openai"]
"""The API an LLM backend speaks."""

WorkspaceSource = Literal["config", "added"]
"""Why a workspace is served: the configuration names it, or a client added it."""
