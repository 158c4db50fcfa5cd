"""Assembles the status document from its sections; every section is read from memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from simpleaided.domain import chips, clock, status
from simpleaided.domain.status import EnvProfile
from simpleaided.services.runs import RunService

# A section provider gets the answer time (epoch ms) and returns the section's JSON data.
SectionProvider = Callable[[int], dict[str, Any]]


def _fixed(data: dict[str, Any]) -> SectionProvider:
    """A provider for a section that does not change (a service not configured)."""
    return lambda _now: data


class StatusService:
    """Builds the status document; later services plug in as section providers."""

    def __init__(
        self,
        runs: RunService,
        *,
        env: EnvProfile,
        socket_path: str,
    ) -> None:
        self._runs = runs
        self.env: EnvProfile = env
        unconfigured = status.unconfigured_sections(env, socket_path)
        self.sections: dict[str, SectionProvider] = {
            name: _fixed(data) for name, data in unconfigured.items()
        }

    def document(self, workspace: str | None = None) -> dict[str, Any]:
        """The status document now, overall or for one workspace's runs."""
        now = clock.now_ms()
        doc: dict[str, Any] = {
            "env": self.env,
            "generatedAt": clock.format_ms(now),
            "runs": status.runs_section(
                self._runs.index,
                now,
                workspace=self._runs.scope(workspace),
                count_pending=self._runs.count_pending_as_active,
            ),
        }
        for name, provider in self.sections.items():
            doc[name] = provider(now)
        doc["warnings"] = list(self._runs.warnings)
        doc["chips"] = chips.chips(doc)
        return doc
