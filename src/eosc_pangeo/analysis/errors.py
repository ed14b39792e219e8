"""Errors of the analysis functions: each names the argument or field at fault and what to do."""

from __future__ import annotations


class AnalysisError(ValueError):
    """An input cannot be analysed as asked.

    Parameters
    ----------
    field
        The argument, coordinate, column or variable at fault (e.g. ``observations.time``).
    problem
        What is wrong with it.
    hint
        What the user can do about it.
    """

    def __init__(self, field: str, problem: str, hint: str = "") -> None:
        self.field = field
        self.problem = problem
        self.hint = hint
        message = f"{field}: {problem}"
        if hint:
            message += f" ({hint})"
        super().__init__(message)

    def __reduce__(self):
        # Raised on Dask workers too: travel back with the three fields, not the message.
        return type(self), (self.field, self.problem, self.hint)


class UnitsError(AnalysisError):
    """Units that cannot be converted into one another (e.g. K and m s-1)."""
