"""LLM backend probes: each configured backend's model list is fetched at start-up and every
``probe_seconds``, all backends at once, each bounded by ``timeout_seconds``.

The ``llm`` section of the status document is kept in memory from the last probes, so a
status query never waits for a backend. A probe sends the API key (a vault reference resolved
per probe) as a bearer token, follows redirects only within the same origin, and reads at most
``MAX_ANSWER_BYTES``. Neither the key nor a password in the URL ever reaches the status
document, an error message or the log.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from simpleaided import __version__
from simpleaided.domain import clock
from simpleaided.domain.errors import NotFound, VaultLocked
from simpleaided.domain.llm import (
    NOT_PROBED,
    LlmBackendSpec,
    ProbeOutcome,
    backend_entry,
    classify,
    llm_section,
    models_url,
    timed_out,
)
from simpleaided.domain.secrets import VAULT_REF, SecretResolver, scrub

if TYPE_CHECKING:
    # Imported when a backend is first probed: httpx and what it loads (ssl, certificates)
    # cost ~15 MB of memory that a daemon without LLM backends should not pay.
    import httpx

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a hosted API's full model list stays well under this
MAX_REDIRECTS = 3


class _TooLarge(Exception):
    """The answer is longer than ``MAX_ANSWER_BYTES``."""


class LlmService:
    """Probes the configured LLM backends and keeps the ``llm`` status section."""

    def __init__(
        self,
        backends: Sequence[LlmBackendSpec],
        *,
        probe_seconds: float,
        timeout_seconds: float,
        resolve_secret: SecretResolver,
        on_change: Callable[[], None],
    ) -> None:
        self.backends = tuple(backends)
        self.probe_seconds = probe_seconds
        self.timeout_seconds = timeout_seconds
        self._resolve_secret = resolve_secret
        self._on_change = on_change
        self._http: httpx.AsyncClient | None = None  # made by the first probe
        self._entries = [
            backend_entry(spec, ProbeOutcome.offline(NOT_PROBED)) for spec in self.backends
        ]
        self._section = llm_section(self._entries)
        self._probing: anyio.Event | None = None  # set when the probe in flight ends
        self._wake: anyio.Event | None = None  # set by probe_soon() while run() waits

    def section(self) -> dict[str, Any]:
        """The ``llm`` section from memory; the same object until its content changes."""
        return self._section

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Report started at once, then probe every ``probe_seconds`` (or sooner when
        ``probe_soon`` asks) until cancelled."""
        task_status.started()  # a backend's answer must never delay the daemon's start
        while True:
            self._wake = anyio.Event()
            if self.backends:
                await self.probe()
            # With no backend, only a reconfiguration wakes it.
            with anyio.move_on_after(self.probe_seconds if self.backends else math.inf):
                await self._wake.wait()

    async def reconfigure(
        self, backends: Sequence[LlmBackendSpec], *, probe_seconds: float, timeout_seconds: float
    ) -> None:
        """Replace the backends and timings (a reloaded configuration) and probe them now."""
        while self._probing is not None:  # a probe in flight reports on the old backends
            await self._probing.wait()
        self.backends = tuple(backends)
        self.probe_seconds = probe_seconds
        self.timeout_seconds = timeout_seconds
        if self._http is not None:  # its timeout was the old one
            http, self._http = self._http, None
            await http.aclose()
        self._entries = [
            backend_entry(spec, ProbeOutcome.offline(NOT_PROBED)) for spec in self.backends
        ]
        self._section = llm_section(self._entries)
        self._on_change()
        self.probe_soon()

    def probe_soon(self) -> None:
        """Have ``run`` probe now (after the vault unlocks, for example); call it on the loop."""
        if self._wake is not None:
            self._wake.set()

    async def probe(self) -> dict[str, Any]:
        """Probe every backend now, all at once, and return the section; a caller that comes
        while a probe is in flight waits for that one instead of starting another."""
        if self._probing is not None:
            await self._probing.wait()
            return self._section
        done = self._probing = anyio.Event()
        try:
            # Shielded: whoever started the probe (an llm.probe whose client went away) may
            # be cancelled, but others wait for this probe, and each backend's part is bounded
            # by timeout_seconds anyway.
            with anyio.CancelScope(shield=True):
                async with anyio.create_task_group() as tg:
                    for index in range(len(self.backends)):
                        tg.start_soon(self._probe_one, index)
        finally:
            self._probing = None
            done.set()
        return self._section

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._http is not None:
            await self._http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_seconds),
                # A fresh connection per probe: the probe then tells whether a new client
                # could connect, and no idle sockets are held between probes.
                limits=httpx.Limits(max_keepalive_connections=0),
                follow_redirects=False,  # followed by hand, within the same origin only
                headers={"User-Agent": f"simpleaided/{__version__}"},
            )
        return self._http

    async def _probe_one(self, index: int) -> None:
        import httpx

        spec = self.backends[index]
        secrets: list[str] = []
        latency_ms: float | None = None
        try:
            with anyio.fail_after(self.timeout_seconds):
                outcome, latency_ms = await self._fetch(spec, secrets)
        except (TimeoutError, httpx.TimeoutException):
            # fail_after is the hard bound: httpx's timeouts are per read, so a server
            # that trickles bytes would never trip them.
            outcome = ProbeOutcome.offline(timed_out(self.timeout_seconds))
        except _TooLarge:
            outcome = ProbeOutcome.offline(f"answer larger than {MAX_ANSWER_BYTES >> 20} MiB")
        except httpx.HTTPError as exc:
            outcome = ProbeOutcome.offline(_describe(exc))
        except Exception:
            # One backend's surprise must not end the probes (or the daemon).
            log.exception("LLM backend %s: probe failed", spec.name)
            outcome = ProbeOutcome.offline("probe failed (internal error, see the daemon log)")
        if outcome.error:
            outcome = ProbeOutcome(outcome.online, outcome.models, scrub(outcome.error, secrets))
        self._record(index, outcome, latency_ms)

    async def _fetch(
        self, spec: LlmBackendSpec, secrets: list[str]
    ) -> tuple[ProbeOutcome, float | None]:
        """GET the model list; returns what it means and the time to the last byte (ms).
        ``secrets`` collects what must be scrubbed from any error."""
        import httpx

        try:
            url = httpx.URL(models_url(spec))
        except (httpx.InvalidURL, ValueError):  # urlsplit raises ValueError on a bad IPv6 host
            return ProbeOutcome.offline("invalid URL"), None
        headers: dict[str, str] = {}
        auth: httpx.BasicAuth | None = None
        if url.userinfo:
            # Sent as a header, not in the URL: httpx logs each request's URL, password and all.
            secrets += [url.username, url.password]  # either can be the token
            auth = httpx.BasicAuth(url.username, url.password)
            url = url.copy_with(username=None, password=None)
        if spec.api_key is not None:
            try:
                key = self._resolve_secret(spec.api_key)
            except VaultLocked:
                return ProbeOutcome.offline("API key needs the vault, which is locked"), None
            except NotFound:
                name = spec.api_key.removeprefix(VAULT_REF)
                return ProbeOutcome.offline(f"API key secret {name!r} not in the vault"), None
            secrets.append(key)
            headers["Authorization"] = f"Bearer {key}"
            auth = None  # the bearer token wins over a user:password in the URL

        origin = (url.scheme, url.host, url.port)
        client = self._client()
        request = client.build_request("GET", url, headers=headers)
        started = time.perf_counter()
        for _hop in range(MAX_REDIRECTS + 1):
            response = await client.send(request, auth=auth, stream=True)
            try:
                next_request = response.next_request
                if next_request is not None:
                    target = next_request.url
                    if (target.scheme, target.host, target.port) == origin:
                        request = next_request
                        continue
                    outcome = classify(spec, response.status_code, b"", None, location=str(target))
                    return outcome, _ms_since(started)
                body = await _read_capped(response)
            finally:
                await response.aclose()
            content_type = response.headers.get("content-type")
            return classify(spec, response.status_code, body, content_type), _ms_since(started)
        return ProbeOutcome.offline(f"more than {MAX_REDIRECTS} redirects"), _ms_since(started)

    def _record(self, index: int, outcome: ProbeOutcome, latency_ms: float | None) -> None:
        """Store one backend's outcome; tell ``on_change`` only when what it means changed.

        The section is rebuilt on every probe (``checkedAt`` and ``latencyMs`` move each
        time, and a status query shows them), but ``on_change`` is called only when
        ``online``, ``models`` or ``error`` changed: otherwise every probe of every backend
        would wake each status subscriber for a latency figure.
        """
        spec = self.backends[index]
        old = self._entries[index]
        new = backend_entry(
            spec, outcome, latency_ms=latency_ms, checked_at=clock.format_ms(clock.now_ms())
        )
        self._entries[index] = new
        self._section = llm_section(self._entries)
        if old["online"] != new["online"] or old["checkedAt"] is None:
            if new["online"]:
                log.info("LLM backend %s is online", spec.name)
            else:
                log.info("LLM backend %s is offline: %s", spec.name, new["error"])
        if (old["online"], old["models"], old["error"]) != (
            new["online"],
            new["models"],
            new["error"],
        ):
            try:
                self._on_change()
            except Exception:  # a subscriber's bug must not end the probes
                log.exception("LLM backend %s: on_change failed", spec.name)


async def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _TooLarge
    return bytes(body)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _describe(exc: httpx.HTTPError) -> str:
    """A short phrase for a failed request, never naming the URL (it may hold credentials)."""
    import httpx

    if isinstance(exc, httpx.ConnectError):
        return _connect_failure(exc)
    if isinstance(exc, httpx.RemoteProtocolError):
        if "without sending" in str(exc):
            return "the server closed the connection without answering"
        return "not an HTTP answer (is this an HTTP server?)"
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "unsupported URL scheme"
    if isinstance(exc, httpx.DecodingError):
        return "the answer could not be decoded"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "connection lost"
    return f"request failed ({type(exc).__name__})"


def _connect_failure(exc: BaseException) -> str:
    """Why a connection failed, from the OS errors behind it (anyio tries every address of
    the host and raises "All connection attempts failed" from the last one)."""
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS error: {cause.verify_message or 'certificate verify failed'}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS error: {(cause.reason or 'handshake failed').lower().replace('_', ' ')}"
        if isinstance(cause, socket.gaierror):
            return "host not found"
        if isinstance(cause, OSError) and cause.errno in _CONNECT_ERRNOS:
            return _CONNECT_ERRNOS[cause.errno]
        if isinstance(cause, OSError) and cause.errno:
            return f"cannot connect: {os.strerror(cause.errno).lower()}"
    return "cannot connect"


_CONNECT_ERRNOS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTUNREACH: "host unreachable",
}


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc``, what caused it, and what those came from, through exception groups too."""
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < 50:  # a bound: cause chains can loop
        current = pending.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for nxt in (current.__cause__, current.__context__):
            if nxt is not None:
                pending.append(nxt)
    return found
