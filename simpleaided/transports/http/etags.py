"""Conditional GETs: whether a request's ``If-None-Match`` names what it would be sent."""

from __future__ import annotations

import re

from starlette.datastructures import Headers

# An entity tag (``"x"``, weak ``W/"x"``), wherever it stands in a list.
_TAG = re.compile(r'(?:W/)?"[^"]*"')


def not_modified(headers: Headers, etag: str) -> bool:
    """Whether the ``If-None-Match`` headers name ``etag``: a field that is ``*`` alone (a
    ``*`` elsewhere, as in ``xyz*``, names nothing), or a tag in their lists equal to it under
    the weak comparison If-None-Match calls for (``W/"x"`` and ``"x"`` alike; RFC 9110,
    13.1.2). The answer is then ``304 Not Modified``."""
    opaque = etag.removeprefix("W/")
    for field in headers.getlist("if-none-match"):
        if field.strip() == "*":
            return True
        for tag in _TAG.findall(field):
            if tag.removeprefix("W/") == opaque:
                return True
    return False
