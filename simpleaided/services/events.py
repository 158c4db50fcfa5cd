"""Change events and subscriptions: ``status.changed`` and ``run.event`` notifications.

Every change to the index bumps one global ``seq`` and wakes the subscribers. Each
subscription has its own pump task on its connection, so a slow subscriber only delays
itself, and each pump sends at most one notification per ``COALESCE_SECONDS``:

* a status subscription sends the *current* document with the ``seq`` it reflects (a burst of
  changes collapses into one document);
* a run subscription sends the events gathered since its last notification, in order, each with
  its own ``seq`` (a bounded buffer; on overflow the subscriber is told to resynchronise).

Subscribing registers and snapshots in one synchronous step on the event loop, so no change can
fall between the snapshot's ``seq`` and the first notification.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import anyio

from simpleaided.domain import chips
from simpleaided.domain.errors import NotFound
from simpleaided.domain.index import RunSummary

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.05
MAX_PENDING_EVENTS = 10_000


class Subscriber(Protocol):
    """A client connection that can receive notifications (implemented by the transport)."""

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Send one JSON-RPC notification."""

    def start_after_reply(self, task: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``task`` on this connection once the current request's reply has gone out;
        it is cancelled when the connection closes."""

    def on_close(self, key: str, callback: Callable[[], object]) -> None:
        """Call ``callback`` when the connection closes (one callback per ``key``)."""


class _Subscription:
    """What every subscription has: its connection, its wake-up event, its pump."""

    def __init__(self, hub: EventHub, subscriber: Subscriber) -> None:
        self.hub = hub
        self.subscriber = subscriber
        self.wake = anyio.Event()
        self.scope = anyio.CancelScope()
        self.sent_seq = hub.seq
        self.last_sent = -math.inf

    async def pump(self) -> None:
        with self.scope:
            while True:
                await self.wake.wait()
                self.wake = anyio.Event()
                delay = self.last_sent + COALESCE_SECONDS - anyio.current_time()
                if delay > 0:
                    await anyio.sleep(delay)  # coalesce: at most one per period
                if await self.flush():
                    self.last_sent = anyio.current_time()

    async def flush(self) -> bool:
        """Send what is due; returns whether anything was sent."""
        raise NotImplementedError

    def close(self) -> None:
        self.scope.cancel()


class StatusSubscription(_Subscription):
    """Sends the status document (of one workspace, or all) after changes."""

    def __init__(self, hub: EventHub, subscriber: Subscriber, workspace: str | None) -> None:
        super().__init__(hub, subscriber)
        self.workspace = workspace
        self.words: list[tuple[str, str]] = []  # of the chips last sent

    async def flush(self) -> bool:
        seq = self.hub.seq
        if seq <= self.sent_seq:
            return False
        doc = self.hub.document(self.workspace)  # built at ``seq``: no await in between
        self.sent_seq = seq
        self.words = _words(doc)
        await self.subscriber.notify("status.changed", {"seq": seq, "status": doc})
        return True


def _words(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(chip["text"], chip["tooltip"]) for chip in doc["chips"]]


class RunSubscription(_Subscription):
    """Sends the events of one run, or of all runs, in order."""

    def __init__(self, hub: EventHub, subscriber: Subscriber, run_id: str | None) -> None:
        super().__init__(hub, subscriber)
        self.run_id = run_id
        self.pending: list[dict[str, Any]] = []
        self.overflowed = False

    def offer(self, event: dict[str, Any]) -> None:
        if self.run_id is not None and event["runId"] != self.run_id:
            return
        if len(self.pending) >= MAX_PENDING_EVENTS:
            self.overflowed = True
            self.pending.clear()
        self.pending.append(event)
        self.wake.set()

    async def flush(self) -> bool:
        if not self.pending and not self.overflowed:
            return False
        events, self.pending = self.pending, []
        params: dict[str, Any] = {"seq": self.hub.seq, "events": events}
        if self.overflowed:
            # The client fell too far behind: some events are gone; it must re-read.
            params["overflow"] = True
            self.overflowed = False
        await self.subscriber.notify("run.event", params)
        return True


class EventHub:
    """Fans changes out to subscriptions; ``seq`` counts every change since start."""

    def __init__(self, document: Callable[[str | None], dict[str, Any]]) -> None:
        self.document = document
        self.seq = 0
        self._status: dict[Subscriber, StatusSubscription] = {}
        self._runs: dict[Subscriber, RunSubscription] = {}
        # Set when the moment a document next reads differently with time alone may have
        # come nearer (see ``refresh_aged``).
        self.retimed = anyio.Event()

    # -- changes ---------------------------------------------------------------------------

    def follows_runs(self) -> bool:
        """Whether anyone follows run events (``runs.subscribe``)."""
        return bool(self._runs)

    def run_changed(self, old: RunSummary | None, new: RunSummary | None) -> None:
        """The index replaced ``old`` by ``new`` (either may be ``None``)."""
        if old is None and new is None:
            return
        if not self._runs:
            # Nobody follows run events (always so while the index loads): the change is
            # counted, and the event that would describe it is not built.
            self._changed()
            return
        if new is None:
            assert old is not None
            self._publish({"type": "deleted", "runId": old.id, "workspace": old.workspace})
            return
        if old is None:
            kind = "created"
        elif old.status != new.status:
            kind = "status"
        else:
            kind = "updated"
        event: dict[str, Any] = {"type": kind, "runId": new.id, "run": new.to_wire()}
        if kind == "status" and old is not None:
            event["previous"] = old.status
        self._publish(event)

    def step_changed(self, run_id: str, step: dict[str, Any]) -> None:
        """A step was created or moved."""
        self._publish({"type": "step", "runId": run_id, "step": step})

    def artifact_saved(self, run_id: str, artifact: dict[str, Any]) -> None:
        """An artifact was written."""
        self._publish({"type": "artifact", "runId": run_id, "artifact": artifact})

    def section_changed(self) -> None:
        """Another section of the status changed (the vault locked, a backend went offline):
        status subscribers get a new document; run subscribers have nothing to hear."""
        self._changed()

    def refresh_aged(self) -> float | None:
        """Wake the status subscribers whose document now reads differently with time alone
        ("failed 2m ago", "locks in 4m"), which no change announces. A document the
        subscriber already has is not sent again.

        Returns the seconds until some subscriber's document next reads differently with
        time alone (``None``: none would): the daemon calls it again then, so an age is sent
        the moment it ticks over, not up to a polling period later; and again when
        ``retimed`` is set (a change or a new subscriber may bring a nearer moment)."""
        self.retimed = anyio.Event()
        aged = []
        soonest: int | None = None
        for sub in self._status.values():
            try:
                doc = self.document(sub.workspace)
            except NotFound:
                continue  # the workspace went: the pump ends this subscription
            if _words(doc) != sub.words:
                aged.append(sub)
            until = chips.next_words_change_ms(doc)
            if until is not None and (soonest is None or until < soonest):
                soonest = until
        if aged:
            self.seq += 1
            for sub in aged:
                sub.wake.set()
        return None if soonest is None else soonest / 1000

    def _changed(self) -> None:
        self.seq += 1
        if not self.retimed.is_set():
            self.retimed.set()
        for status_sub in self._status.values():
            status_sub.wake.set()

    def _publish(self, event: dict[str, Any]) -> None:
        self._changed()
        event["seq"] = self.seq
        for run_sub in self._runs.values():
            run_sub.offer(event)

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe_status(self, subscriber: Subscriber, workspace: str | None) -> dict[str, Any]:
        """Register (or replace) the connection's status subscription; returns the snapshot.

        Synchronous on purpose: the snapshot and the registration happen at the same ``seq``.
        """
        self._end(self._status, subscriber)
        sub = StatusSubscription(self, subscriber, workspace)
        doc = self.document(workspace)
        sub.words = _words(doc)
        self._status[subscriber] = sub
        self._start(sub, self._status, "status")
        self.retimed.set()  # its ages are followed from their first change on
        return {"seq": self.seq, "status": doc}

    def subscribe_runs(self, subscriber: Subscriber, run_id: str | None) -> dict[str, Any]:
        """Register (or replace) the connection's run-event subscription."""
        self._end(self._runs, subscriber)
        sub = RunSubscription(self, subscriber, run_id)
        self._runs[subscriber] = sub
        self._start(sub, self._runs, "runs")
        return {"seq": self.seq, "runId": run_id}

    def unsubscribe_status(self, subscriber: Subscriber) -> bool:
        """End the connection's status subscription; whether there was one."""
        return self._end(self._status, subscriber)

    def unsubscribe_runs(self, subscriber: Subscriber) -> bool:
        """End the connection's run-event subscription; whether there was one."""
        return self._end(self._runs, subscriber)

    @property
    def subscriptions(self) -> int:
        """How many subscriptions are live."""
        return len(self._status) + len(self._runs)

    def _start(self, sub: _Subscription, table: dict[Subscriber, Any], key: str) -> None:
        subscriber = sub.subscriber

        async def pump() -> None:
            try:
                await sub.pump()
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the connection went away; on_close cleans up
            except Exception:
                # E.g. the subscribed workspace was removed: end this subscription only.
                log.exception("a subscription failed and was ended")
            finally:
                if table.get(subscriber) is sub:
                    del table[subscriber]

        subscriber.start_after_reply(pump)
        subscriber.on_close(key, lambda: self._end(table, subscriber))

    @staticmethod
    def _end(table: dict[Subscriber, Any], subscriber: Subscriber) -> bool:
        sub = table.pop(subscriber, None)
        if sub is None:
            return False
        sub.close()
        return True
