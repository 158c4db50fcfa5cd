"""Reloading the configuration (``SIGHUP``): what a running daemon changes, and what waits.

Applied at once: the profile and the database it selects (first: under PROD the database is
read-only before anything says PROD), the log level, whether pending runs count as active,
the connection limit (from the next connection), the owner check interval, the terminals'
limits (for terminals created from then on; running ones are left alone), the vault's lock
times and key derivation, the LLM backends, and the configured workspaces (added, dropped,
and those that could not be served tried again). Settings only a restart can change are
logged and kept (``carry_restart_only``). Connections and subscriptions are untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from simpleaided.app.config import Config, ConfigError, carry_restart_only
from simpleaided.app.systemd import Notifier
from simpleaided.app.wiring import (
    Services,
    database_settings,
    kdf,
    llm_backends,
    terminal_settings,
)
from simpleaided.domain import clock
from simpleaided.transports.server import warn_if_short_of_descriptors

log = logging.getLogger(__name__)

RELOAD_REFUSED = "configuration not reloaded"  # how the warning of a refused reload begins
WARNING_SOURCE = "reload"  # the source of that warning in the daemon's warnings


class Reloader:
    """The configuration a daemon runs with, and how a reload replaces it."""

    def __init__(
        self,
        config: Config,
        services: Services,
        *,
        load_config: Callable[[], Config] | None,
        notifier: Notifier,
        summary: Callable[[], str],
    ) -> None:
        """``load_config`` reads the configuration again (``None``: a daemon that cannot
        reload); ``summary`` is the daemon's line for the service manager's ``STATUS=``."""
        self.config = config
        self.loaded_ms = clock.now_ms()  # when ``config`` was read
        self.error: str | None = None  # why the last reload was refused, if it was
        self._services = services
        self._load_config = load_config
        self._notifier = notifier
        self._summary = summary
        # What the services run with: a reload compares against these, not against the
        # configuration, so a reload that failed part-way is completed by the next one.
        self._database_applied = database_settings(config)
        self._llm_applied = config.llm

    async def reload(self) -> bool:
        """Read the configuration again and apply it; whether it was applied.

        An invalid configuration is refused, logged and shown as a warning, and the running
        one stays. Settings only a restart can change are logged and kept.
        """
        self._notifier.reloading()
        try:
            if self._load_config is None:
                raise ConfigError("this daemon was started without a configuration to re-read")
            loaded = self._load_config()
        except ConfigError as exc:  # in words: what is wrong, where, what was meant
            self._refused(str(exc))
            return False
        except OSError as exc:  # the disk failing: refused like an invalid file
            log.exception("reading the configuration failed")
            where = f" ({exc.filename})" if exc.filename else ""
            self._refused(f"cannot read it{where}: {(exc.strerror or str(exc)).lower()}")
            return False
        except Exception as exc:  # a bug: said as one, with the log to look at
            log.exception("reading the configuration failed")
            self._refused(f"reading it failed ({type(exc).__name__}; see the log)")
            return False
        new, kept = carry_restart_only(self.config, loaded)
        # Valid: the last refusal's warning goes now, before the services change (a document
        # sent between the steps must not show the new settings beside the old refusal).
        self._services.warnings.clear(WARNING_SOURCE)
        if kept:
            log.warning(
                "changed in the configuration, applied at the next start: %s", ", ".join(kept)
            )
        try:
            await self._apply(new)
        except Exception as exc:  # a bug: the daemon must go on serving
            log.exception("applying the reloaded configuration failed")
            # What was applied stays applied; the next reload completes the rest.
            self._refused(f"applying it failed part-way ({type(exc).__name__}; see the log)")
            return False
        self.error = None
        self.loaded_ms = clock.now_ms()
        self._services.events.section_changed()
        self._notifier.ready(self._summary())
        log.info("configuration reloaded")
        return True

    def _refused(self, reason: str) -> None:
        self.error = reason
        log.error("%s, the running one stays: %s", RELOAD_REFUSED, reason)
        self._services.warnings.set(WARNING_SOURCE, f"{RELOAD_REFUSED}: {reason}")
        self._services.events.section_changed()
        self._notifier.ready(self._summary())

    async def _apply(self, new: Config) -> None:
        services = self._services
        # The database first: under PROD it must be read-only before anything says PROD.
        database = database_settings(new)
        if database != self._database_applied:
            await services.database.reconfigure(database)
            self._database_applied = database
        self.config = new
        services.status.env = new.env
        logging.getLogger().setLevel(new.daemon.log_level.upper())
        services.runs.count_pending_as_active = new.runs.count_pending_as_active
        if new.limits.max_connections > services.server.max_connections:
            warn_if_short_of_descriptors(new.limits.max_connections)
        services.server.max_connections = new.limits.max_connections  # from the next connection
        services.owners.interval = new.runs.owner_check_seconds
        # For terminals created from now on; no running terminal is touched.
        services.terminals.configure(terminal_settings(new))
        services.vault.configure(
            idle_seconds=new.vault.idle_lock_seconds,
            max_seconds=new.vault.max_unlock_seconds,
            kdf=kdf(new),
            failed_delay_seconds=new.vault.failed_unlock_delay_seconds,
        )
        if new.llm != self._llm_applied:
            await services.llm.reconfigure(
                llm_backends(new),
                probe_seconds=new.llm.probe_seconds,
                timeout_seconds=new.llm.timeout_seconds,
            )
            self._llm_applied = new.llm
        # Always: it retries configured workspaces that could not be served before.
        await services.runs.configure_workspaces(new.workspaces, new.flag_workspaces)
