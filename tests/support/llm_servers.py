"""Real loopback servers for the LLM probe tests: an HTTP server that answers each path as told
(status, body, delay, a trickled body), one that accepts connections and never answers, and a
port where nothing listens."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

OLLAMA_TAGS = {
    "models": [
        {"name": "llama3:latest", "model": "llama3:latest", "size": 4661224676},
        {"name": "qwen2.5-coder:7b", "model": "qwen2.5-coder:7b", "size": 4683087332},
    ]
}
OPENAI_MODELS = {
    "object": "list",
    "data": [
        {"id": "gpt-4o-mini", "object": "model", "owned_by": "openai"},
        {"id": "text-embedding-3-small", "object": "model", "owned_by": "openai"},
    ],
}
LLAMACPP_LOADING = {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
HTML_HOME = "<!doctype html><html><body><h1>Welcome</h1></body></html>"


@dataclass
class Route:
    """How a path is answered: ``body`` (a dict is sent as JSON) after ``delay`` seconds, one
    byte every ``trickle`` seconds when set."""

    status: int = 200
    body: Any = b""
    content_type: str | None = None
    delay: float = 0.0
    trickle: float | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> tuple[bytes, str]:
        if isinstance(self.body, dict | list):
            return json.dumps(self.body).encode(), self.content_type or "application/json"
        data = self.body.encode() if isinstance(self.body, str) else bytes(self.body)
        return data, self.content_type or "text/plain; charset=utf-8"


NOT_FOUND = Route(404, "404 page not found")  # what Ollama answers for an unknown path


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]


class LlmServer:
    """An HTTP server on 127.0.0.1 in a thread; ``routes`` may be changed between requests."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.requests: list[Seen] = []
        self._stopping = threading.Event()
        self._http = _Server(("127.0.0.1", 0), self._handler_class())
        self.port = self._http.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def __enter__(self) -> LlmServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving; slow and trickling answers are cut short, their threads joined."""
        self._stopping.set()
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # a client that connects and never sends cannot hold a thread long

            def do_GET(self) -> None:
                server.requests.append(Seen(self.path, dict(self.headers.items())))
                route = server.routes.get(self.path.split("?")[0], NOT_FOUND)
                if route.delay and server._stopping.wait(route.delay):
                    return
                body, content_type = route.payload()
                self.send_response(route.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in route.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if route.trickle is None:
                    self.wfile.write(body)
                    return
                for i in range(len(body)):
                    self.wfile.write(body[i : i + 1])
                    self.wfile.flush()
                    if server._stopping.wait(route.trickle):
                        return

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read the recorded requests instead

        return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # joined by server_close, so no socket outlives a test

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a probe that gave up closes its end; writing to it then fails, as expected


class SilentServer:
    """A port that accepts TCP connections (the kernel completes them) and never answers."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def __enter__(self) -> SilentServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sock.close()


def refused_url() -> str:
    """A loopback URL where nothing listens: a port bound for a moment, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
