"""Errors of the data service: each is one HTTP status with a message that says what to do."""

from __future__ import annotations


class AccessError(Exception):
    """Base class of every error the data service answers on purpose (never a 5xx but 503)."""

    status = 400

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadRequest(AccessError):
    """A malformed query: a constraint, a coordinate, a time or a parameter name."""


class Unauthorized(AccessError):
    """No credentials, or unknown ones, for a collection that needs them."""

    status = 401


class Forbidden(AccessError):
    """Known credentials that do not give access to this collection."""

    status = 403


class NotFound(AccessError):
    """No such collection, variable or file."""

    status = 404


class TooLarge(AccessError):
    """A response larger than the client's limit; the message says how to split the request."""

    status = 413


class TooManyRequests(AccessError):
    """More requests than the client's rate limit allows."""

    status = 429


class Unavailable(AccessError):
    """The collection is being ingested for longer than a request may wait."""

    status = 503


class RangeNotSatisfiable(AccessError):
    """A byte range outside the file, or more than one range."""

    status = 416

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size
