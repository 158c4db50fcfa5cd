"""Compact JSON for wire messages, from the C accelerator behind the ``json`` package.

``import json`` costs about a millisecond (and pulls in ``re``, four more, when nothing else
has): it compiles regular expressions for its pure-Python fallbacks. ``simpleaide status``
runs every few seconds and must stay within twice the start-up time of a bare interpreter, so
the hot path uses ``_json``'s scanner and encoder directly, configured exactly as
``json.loads`` and ``json.dumps(..., ensure_ascii=False, separators=(",", ":"))`` configure
them. Where ``_json`` is missing (another Python implementation), ``json`` serves.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~2 ms to import; annotations are not evaluated at run time
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _DecoderSettings:
    """What ``_json.make_scanner`` reads from its context: ``json.JSONDecoder()``'s defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)


def _no_default(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    import json

    def loads(text: str | bytes) -> Any:
        """Parse one JSON document."""
        return json.loads(text)

    def dumps(value: Any) -> str:
        """Compact JSON, non-ASCII characters kept as they are."""
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

else:
    # typeshed types the context as a scanner; the C code only reads the attributes above.
    _scan: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(
        _DecoderSettings()  # type: ignore[arg-type]
    )
    _encode = _json.make_encoder(
        None,  # markers: no cycle check; wire values are trees
        _no_default,
        _json.encode_basestring,
        None,  # indent
        ":",
        ",",
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan, as json.dumps
    )

    def loads(text: str | bytes) -> Any:
        """Parse one JSON document (a ``ValueError`` if it is not one)."""
        if isinstance(text, bytes | bytearray):
            text = text.decode("utf-8")
        start = len(text) - len(text.lstrip(_WHITESPACE))
        try:
            value, end = _scan(text, start)
        except StopIteration as exc:
            raise ValueError(f"expecting a JSON value at character {exc.value}") from None
        except SystemError:
            # The scanner raises json.decoder's JSONDecodeError for an unfinished string or
            # list, looked up in sys.modules: without ``json`` imported it fails this way.
            # Errors are rare: import it, and let ``json`` read the text and say what is wrong.
            import json

            return json.loads(text)
        if text[end:].strip(_WHITESPACE):
            raise ValueError(f"extra data at character {end}")
        return value

    def dumps(value: Any) -> str:
        """Compact JSON, non-ASCII characters kept as they are."""
        return "".join(_encode(value, 0))
