"""Assembles the status document from its sections; every section is read from memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from simpleaided.domain import chips, clock, status
from simpleaided.domain.vocabulary import EnvProfile
from simpleaided.services.runs import RunService
from simpleaided.services.warnings import Warnings

# A section provider returns its section's JSON data, from memory: the same object while the
# section stands still.
SectionProvider = Callable[[], dict[str, Any]]


def _fixed(data: dict[str, Any]) -> SectionProvider:
    """A provider for a section that does not change (a service not configured)."""
    return lambda: data


class StatusService:
    """Builds the status document; later services plug in as section providers."""

    def __init__(
        self,
        runs: RunService,
        *,
        warnings: Warnings,
        env: EnvProfile,
        socket_path: str,
        sections: dict[str, SectionProvider] | None = None,
    ) -> None:
        """``sections``: the providers of the services that exist; the other sections read
        as not configured."""
        self._runs = runs
        self._warnings = warnings
        self.env: EnvProfile = env
        unconfigured = status.unconfigured_sections(env, socket_path)
        self.sections: dict[str, SectionProvider] = {
            name: _fixed(data) for name, data in unconfigured.items()
        }
        self.sections.update(sections or {})
        # The last document built, and everything it was built from.
        self._last: tuple[tuple[object, ...], dict[str, Any]] = ((), {})
        self._last_encoded: tuple[dict[str, Any] | None, orjson.Fragment] = (
            None,
            orjson.Fragment(b"{}"),
        )

    def document(self, workspace: str | None = None) -> dict[str, Any]:
        """The status document now, overall or for one workspace's runs.

        The document is shared: callers must not change it. A query in the same millisecond
        as the previous one, with nothing changed, gets the previous document, which it would
        have built identically: under load most queries do, and they cost a quarter.
        """
        now = clock.now_ms()
        scope = self._runs.scope(workspace)
        # Every input, compared rather than trusted to announce its changes: the sections
        # are read anew (they are cheap: a provider returns the same object while its
        # section stands still).
        sections = {name: provider() for name, provider in self.sections.items()}
        warnings = self._warnings.messages()
        inputs = (
            now,
            scope,
            self.env,
            self._runs.index.version,
            self._runs.count_pending_as_active,
            warnings,
            sections,
        )
        last_inputs, last_doc = self._last  # one read: a consistent pair
        if inputs == last_inputs:
            return last_doc
        doc: dict[str, Any] = {
            "env": self.env,
            "generatedAt": clock.format_ms(now),
            "runs": status.runs_section(
                self._runs.index,
                now,
                workspace=scope,
                count_pending=self._runs.count_pending_as_active,
            ),
            **sections,
            "warnings": list(warnings),
        }
        doc["chips"] = chips.chips(doc)
        self._last = (inputs, doc)
        return doc

    def encoded(self, workspace: str | None = None) -> orjson.Fragment:
        """The document as JSON, encoded once per document built: a reply embeds it as it
        is, so queries that share a document share its encoding too."""
        doc = self.document(workspace)
        last_doc, fragment = self._last_encoded
        if last_doc is not doc:
            fragment = orjson.Fragment(orjson.dumps(doc))
            self._last_encoded = (doc, fragment)
        return fragment
