"""The HTTP shim: the status document for browsers, read-only, on loopback.

``security`` says what is refused, ``status`` serves the status document and its event
stream, ``openapi`` describes the routes, ``shim`` assembles and serves the application.
"""

from simpleaided.transports.http.shim import HttpShim

__all__ = ["HttpShim"]
