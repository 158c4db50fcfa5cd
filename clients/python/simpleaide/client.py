"""A small synchronous JSON-RPC 2.0 client for simpleaided, over newline-delimited JSON.

It speaks the wire protocol only (it never imports the daemon) and maps error codes back to
exceptions::

    ClientError
    ├── DaemonUnreachable        nothing answers on the socket, or it hung up without a reply
    │   ├── DaemonTimeout        no reply within the read timeout
    │   └── SpawnError           a daemon was started for us but never answered
    ├── SocketPathTooLong        the socket's path is over the kernel's limit for one
    ├── NotUtf8                  a parameter holds text that is not UTF-8: nothing is sent
    ├── ProtocolError            the reply is not JSON-RPC 2.0
    └── RpcError                 the daemon answered with an error (any other code)
        ├── NotFound             -32001  no such run, step, artifact or workspace
        ├── InvalidTransition    -32010  the state machine refused the change
        ├── Conflict             -32011  it already exists
        ├── InvalidParams        -32602  the parameters were refused (details in ``data``)
        ├── VaultLocked          -32020  the vault is locked or not initialized
        ├── WrongPassphrase      -32021  the passphrase does not open the vault
        ├── VaultDamaged         -32022  the vault file fails authentication
        ├── ReadOnly             -32030  refused: the profile is PROD
        ├── LimitExceeded        -32040  a message or artifact is over a limit
        ├── BackendUnavailable   -32050  a database or LLM backend cannot be reached
        ├── SocketOnly           -32060  refused on this connection: only the socket serves it
        └── Cancelled            -32800  the query was cancelled (db.cancel)

Usage::

    with Client(socket_path) as client:
        run = client.call("runs.create", workspace="/home/me/project", title="Refactor")

Replies and server notifications (``status.changed`` after ``status.subscribe``...) share the
connection: ``call`` returns its reply and keeps the notifications that came first, in order,
for ``receive_notification``.
"""

from __future__ import annotations

# ``_socket`` instead of ``socket``: the wrapper module builds several IntEnums at import
# time (~2 ms), a real share of the budget of ``simpleaide status``, which status lines run
# every few seconds. The C module has everything a Unix-socket client needs.
import _socket
import sys

from simpleaide import fastjson

# ``typing`` alone costs ~2 ms to import and annotations are never evaluated here (postponed
# annotations), so it is imported for type checkers only; mypy reads any ``TYPE_CHECKING`` as
# true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any

DEFAULT_TIMEOUT = 30.0
_CHUNK = 1 << 16
# The longest path a Unix socket can have: ``sun_path`` holds 108 bytes, its NUL included.
MAX_SOCKET_PATH_BYTES = 107

# The protocol version this client speaks; the daemon tells its own in ``daemon.info``
# (``apiVersion``). Kept in step with ``simpleaided.domain.api.API_VERSION`` by hand: the
# client never imports the daemon.
API_VERSION = 1


class ClientError(Exception):
    """Base of every error this client raises."""


class DaemonUnreachable(ClientError):
    """Nothing answers on the socket (or the connection dropped before the reply)."""


class DaemonTimeout(DaemonUnreachable):
    """The daemon did not reply within the read timeout."""


class SpawnError(DaemonUnreachable):
    """A daemon was started but did not answer; the message says why, with its log.

    ``summary`` is the CLI's own sentence and ``log_lines`` the lines quoted from the
    daemon's log, kept apart so each can be shown safely; ``str()`` joins them."""

    def __init__(self, summary: str, log_lines: tuple[str, ...] = ()) -> None:
        self.summary = summary
        self.log_lines = log_lines
        super().__init__(summary + "".join(f"\n  | {line}" for line in log_lines))


class SocketPathTooLong(ClientError):
    """The socket's path is longer than a Unix socket's can be (``MAX_SOCKET_PATH_BYTES``)."""

    def __init__(self, path: str, length: int) -> None:
        super().__init__(
            f"socket path too long ({length} bytes; the limit is {MAX_SOCKET_PATH_BYTES}): "
            f"{path}; use a shorter --socket or SIMPLEAIDE_SOCKET, or a shorter XDG_RUNTIME_DIR"
        )
        self.path = path


def check_socket_path(path: str) -> None:
    """Raise ``SocketPathTooLong`` if no Unix socket can have ``path``."""
    length = len(path.encode("utf-8", "surrogateescape"))
    if length > MAX_SOCKET_PATH_BYTES:
        raise SocketPathTooLong(path, length)


class NotUtf8(ClientError):
    """A parameter holds text that is not UTF-8, which the protocol cannot carry (the CLI
    names the parameter before sending)."""

    def __init__(self, method: str) -> None:
        super().__init__(
            f"cannot send {method}: a parameter holds text that is not UTF-8 (the protocol "
            "carries UTF-8 text only)"
        )


class ProtocolError(ClientError):
    """The daemon's reply is not a JSON-RPC 2.0 response."""


class RpcError(ClientError):
    """The daemon answered with a JSON-RPC error: ``code``, ``message`` and ``data``."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


class NotFound(RpcError):
    """The addressed run, step, artifact or workspace does not exist (-32001)."""


class InvalidTransition(RpcError):
    """The state machine refused the change (-32010); ``data`` has current and requested."""


class Conflict(RpcError):
    """The thing to create already exists (-32011)."""


class InvalidParams(RpcError):
    """The parameters were refused (-32602); ``data`` may list the validation errors."""


class LimitExceeded(RpcError):
    """A message or artifact is larger than the daemon's limit (-32040)."""


class VaultLocked(RpcError):
    """The vault is locked, or not initialized yet (-32020)."""


class WrongPassphrase(RpcError):
    """The passphrase does not open the vault (-32021)."""


class VaultDamaged(RpcError):
    """The vault file is damaged or was tampered with (-32022)."""


class ReadOnly(RpcError):
    """Refused because the active profile is PROD (-32030)."""


class BackendUnavailable(RpcError):
    """A database or LLM backend cannot be reached or is not ready (-32050)."""


class SocketOnly(RpcError):
    """The method is served on the owner-only socket alone, not over the web console's
    WebSocket (-32060): ``vault.get``, ``vault.init``, ``vault.changePassphrase``..."""


class Cancelled(RpcError):
    """The query was stopped by ``db.cancel`` (-32800)."""


ERROR_CLASSES: dict[int, type[RpcError]] = {
    -32001: NotFound,
    -32010: InvalidTransition,
    -32011: Conflict,
    -32602: InvalidParams,
    -32020: VaultLocked,
    -32021: WrongPassphrase,
    -32022: VaultDamaged,
    -32030: ReadOnly,
    -32040: LimitExceeded,
    -32050: BackendUnavailable,
    -32060: SocketOnly,
    -32800: Cancelled,
}


def rpc_error(error: Any) -> RpcError:
    """The exception for a JSON-RPC error object."""
    if not isinstance(error, dict) or not isinstance(error.get("code"), int):
        return RpcError(-32603, f"malformed error object: {str(error)[:200]}")
    code: int = error["code"]
    message = str(error.get("message") or f"error {code}")
    return ERROR_CLASSES.get(code, RpcError)(code, message, error.get("data"))


class Client:
    """One connection to simpleaided; it connects on the first call and is not thread-safe."""

    def __init__(self, socket_path: str, *, timeout: float | None = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._sock: _socket.socket | None = None
        self._buffer = bytearray()
        self._next_id = 1
        self._notifications: list[dict[str, Any]] = []

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def connect(self) -> None:
        """Open the connection now (``call`` does it when needed)."""
        if self._sock is not None:
            return
        check_socket_path(self.socket_path)  # else connect says only "AF_UNIX path too long"
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise DaemonUnreachable(f"no daemon answers on {self.socket_path} ({reason})") from None
        self._sock = sock

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer.clear()
        self._notifications.clear()

    def release(self) -> tuple[_socket.socket, bytes, list[dict[str, Any]]]:
        """Hand the connection over to a caller that runs its own loop on it (``term
        attach``): the socket, the bytes received but not read yet, and the notifications
        kept. The client forgets them; a later call connects anew."""
        self.connect()
        assert self._sock is not None
        handed = (self._sock, bytes(self._buffer), list(self._notifications))
        self._sock = None
        self._buffer.clear()
        self._notifications.clear()
        return handed

    def peer_pid(self) -> int | None:
        """The daemon's pid as the kernel sees it from here (``SO_PEERCRED``), if known."""
        self.connect()
        assert self._sock is not None
        try:
            raw = self._sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        except (OSError, AttributeError):
            return None
        pid = int.from_bytes(raw[:4], sys.byteorder, signed=True)
        return pid if pid > 0 else None

    def ping(self) -> bool:
        """Whether a daemon answers ``daemon.ping`` on the socket."""
        try:
            return bool(self.call("daemon.ping") == "pong")
        except ClientError:
            self.close()
            return False

    def call(self, method: str, /, **params: Any) -> Any:
        """Call ``method`` with named ``params`` (``None`` values are left out) and return
        its result; a JSON-RPC error raises the matching ``RpcError`` subclass."""
        named = {key: value for key, value in params.items() if value is not None}
        return self.call_encoded(method, fastjson.dumps(named) if named else None)

    def call_encoded(self, method: str, params: str | None) -> Any:
        """``call`` with the parameters already encoded as the text of a JSON object: a
        large base64 body is put in as it is, without the encoder scanning every character."""
        request_id = self._next_id
        self._next_id += 1
        head = fastjson.dumps({"jsonrpc": "2.0", "method": method, "id": request_id})
        payload = head if params is None else f'{head[:-1]},"params":{params}}}'
        try:
            # Text made of bytes that are not UTF-8 (an argument, a file name) holds lone
            # surrogates: sent, the daemon could say only that the message does not parse.
            data = payload.encode("utf-8") + b"\n"
        except UnicodeEncodeError:
            raise NotUtf8(method) from None
        self.connect()
        assert self._sock is not None
        try:
            try:
                self._sock.sendall(data)
            except OSError:
                # The daemon hangs up on a message over its limit, after saying why.
                self._raise_parting_error()
                raise
            while True:
                reply = self._receive()
                # Keep server notifications; an id of null answers a message it could not read.
                if isinstance(reply, dict) and "method" in reply and "id" not in reply:
                    self._notifications.append(reply)
                    continue
                if not isinstance(reply, dict) or "method" in reply:
                    continue
                if reply.get("id") in (request_id, None):
                    break
        except TimeoutError:
            self.close()
            raise DaemonTimeout(
                f"no reply from simpleaided on {self.socket_path} within {self.timeout:g} s"
            ) from None
        except OSError as exc:
            raise self._broken(exc) from None
        if "error" in reply:
            raise rpc_error(reply["error"])
        if "result" not in reply:
            raise ProtocolError("the reply has neither a result nor an error")
        return reply["result"]

    def receive_notification(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next notification from the daemon (``{"method", "params"}``), waiting up to
        ``timeout`` seconds (``None``: until one comes); ``None`` if none came in time.

        Raises ``DaemonUnreachable`` when the daemon closes the connection."""
        if self._notifications:
            return self._notifications.pop(0)
        self.connect()
        assert self._sock is not None
        self._sock.settimeout(timeout)
        try:
            while True:
                message = self._receive()
                if isinstance(message, dict) and "method" in message and "id" not in message:
                    return message
                # Anything else (a late reply to an abandoned call) is not for us.
        except TimeoutError:
            return None  # a partial message stays buffered for the next read
        except OSError as exc:
            raise self._broken(exc) from None
        finally:
            if self._sock is not None:
                self._sock.settimeout(self.timeout)

    def _broken(self, exc: OSError) -> DaemonUnreachable:
        """Close the connection and describe why it broke."""
        self.close()
        reason = exc.strerror or type(exc).__name__
        return DaemonUnreachable(f"the connection to {self.socket_path} broke ({reason})")

    def _raise_parting_error(self) -> None:
        """Raise the error the daemon sent before closing the connection, if it sent one."""
        if self._sock is None:
            return
        try:
            self._sock.settimeout(0.5)
            reply = self._receive()
        except (OSError, ClientError):
            return
        if isinstance(reply, dict) and "error" in reply:
            self.close()
            raise rpc_error(reply["error"])

    def _receive(self) -> Any:
        """The next message from the daemon, parsed."""
        assert self._sock is not None
        scanned = 0
        while True:
            end = self._buffer.find(b"\n", scanned)
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                if not line.strip():
                    scanned = 0
                    continue
                try:
                    return fastjson.loads(line)
                except ValueError as exc:
                    self.close()
                    raise ProtocolError(f"the reply is not JSON: {exc}") from None
            scanned = len(self._buffer)
            chunk = self._sock.recv(_CHUNK)
            if not chunk:
                self.close()
                raise DaemonUnreachable(
                    f"simpleaided on {self.socket_path} closed the connection without a reply"
                )
            self._buffer += chunk
