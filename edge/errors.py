"""Errors of the edge, on top of the federation's (``federation/errors.py``): each is an HTTP
answer the ``json_errors`` middleware turns into ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from federation.errors import SpilloverError, Unavailable


class BadRequest(SpilloverError):
    """A header, parameter or path segment broke a rule; the message names it and the rule."""

    status = 400
    code = "bad_request"


class BodyTimeout(SpilloverError):
    """The client did not send its body in time (``body_timeout``, ``body_min_rate``). The
    connection is closed after the answer: the rest of the body is never read."""

    status = 408
    code = "body_timeout"


class Overloaded(Unavailable):
    """This edge is serving ``max_connections`` requests already; another edge, or this one a
    moment later, can take the request."""

    code = "overloaded"
