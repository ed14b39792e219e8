"""Errors and warnings of the data lake: each names the file or field at fault and what to do."""

from __future__ import annotations

from dataclasses import dataclass


class LakeError(Exception):
    """Base class of every error the lake raises on purpose."""


class IngestError(LakeError):
    """A source file cannot be ingested; the lake was left exactly as it was.

    Parameters
    ----------
    source
        The file (or ``file:field``) at fault.
    problem
        What is wrong with it.
    hint
        What the user can do about it.
    """

    def __init__(self, source: str, problem: str, hint: str = "") -> None:
        self.source = source
        self.problem = problem
        self.hint = hint
        message = f"{source}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __reduce__(self):
        # Raised in worker processes too: travel back with the three fields, not the message.
        return type(self), (self.source, self.problem, self.hint)


class CollectionBusy(LakeError):
    """Another ingest is writing the collection; the message names it and its lock file."""


class CollectionNotFound(LakeError, KeyError):
    """No collection of that id in the lake."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NoLakeGiven(LakeError, ValueError):
    """Neither a lake URL nor ``EOSC_PANGEO_LAKE``."""


class NotALake(LakeError):
    """The URL given as a lake holds no collection (an empty folder, or not the lake's root)."""


class LakeUnreachable(LakeError):
    """The lake's store refused access (no or wrong credentials); the message says what to set."""


class SelectionError(LakeError, ValueError):
    """A selection (bbox, time, variables, store) that the collection cannot answer."""


class UnknownVariable(SelectionError, KeyError):
    """A variable asked for that the collection does not hold; the message lists those it does."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class LakeWarning(UserWarning):
    """Something worth a look that does not stop an ingest (e.g. a gap in a time series)."""


@dataclass(frozen=True)
class Finding:
    """One result of ``lake validate``: a check on a collection, passed or failed."""

    collection: str
    check: str
    ok: bool
    message: str
    target: str = ""


class SourceError(IngestError):
    """A sync source that cannot be listed (unknown scheme, unreachable, not a listing); the
    lake was not touched."""
