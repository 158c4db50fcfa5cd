"""The wire contract seen from both sides: the client library knows every error the daemon
sends, under the same name, speaks the same protocol version, and exports what it defines."""

from __future__ import annotations

import inspect

import simpleaide
import simpleaide.client as client
from simpleaided.domain import api
from simpleaided.domain.errors import InvalidInput
from simpleaided.transports import rpc


def test_the_client_has_a_class_for_every_error_the_daemon_sends() -> None:
    sent = {code: cls for cls, code in rpc._ERROR_CODES}
    assert set(client.ERROR_CLASSES) == set(sent)
    for code, daemon_class in sent.items():
        expected = "InvalidParams" if daemon_class is InvalidInput else daemon_class.__name__
        assert client.ERROR_CLASSES[code].__name__ == expected, code


def test_both_sides_speak_the_same_protocol_version() -> None:
    assert client.API_VERSION == api.API_VERSION


def test_the_client_package_exports_every_public_class_it_defines() -> None:
    defined = {
        name
        for name, value in vars(client).items()
        if inspect.isclass(value)
        and value.__module__ == client.__name__
        and not name.startswith("_")
        and (issubclass(value, client.ClientError) or name == "Client")
    }
    assert defined <= set(simpleaide.__all__), sorted(defined - set(simpleaide.__all__))
    assert all(hasattr(simpleaide, name) for name in simpleaide.__all__)
