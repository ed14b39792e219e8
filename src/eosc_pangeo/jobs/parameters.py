"""Parameters of a notebook (papermill's ``parameters`` cell) or a script, checked before a run.

A notebook declares its parameters in the cell tagged ``parameters``, as papermill reads them.
A script declares them with one call, whose keyword defaults are its parameters::

    from eosc_pangeo.jobs import parameters
    p = parameters(year=2020, region="north-atlantic", threshold=0.5)

Inside a job the call returns the values the job was given (``-p year=2021``), else the
defaults; the job passes them in ``EOSC_PANGEO_JOB_PARAMETERS`` (JSON), read through
:class:`~eosc_pangeo.config.Settings`. Both are read statically (papermill's
``inspect_notebook``, the script's syntax tree), so a wrong name or value is refused before
anything is submitted.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from ..config import get_settings
from .model import ParameterError

# Types a parameter can take from the command line, by the type of its default.
SIMPLE_TYPES = (bool, int, float, str)


def declared_parameters(path: Path) -> dict[str, Any]:
    """``{name: default}`` of the parameters a notebook or script declares.

    A default that is not a literal (``date = today()``) is given as :class:`Expression`, and
    accepts any value.
    """
    if path.suffix == ".ipynb":
        from papermill.inspection import inspect_notebook

        return {
            name: literal_or_expression(spec["default"])
            for name, spec in inspect_notebook(str(path)).items()
        }
    return script_parameters(path)


class Expression(str):
    """A default that is not a literal: any value is accepted for it."""


def literal_or_expression(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return Expression(source)


def script_parameters(path: Path) -> dict[str, Any]:
    """The keyword defaults of the script's ``parameters(...)`` call, if it makes one."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as error:
        raise ParameterError(
            f"{path}: not valid Python ({error.msg}, line {error.lineno})"
        ) from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and call_name(node.func) == "parameters":
            return {
                keyword.arg: literal_or_expression(ast.unparse(keyword.value))
                for keyword in node.keywords
                if keyword.arg is not None
            }
    return {}


def call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def parse_assignments(assignments: list[str]) -> dict[str, str]:
    """``["year=2020", "name=a b"]`` -> ``{"year": "2020", "name": "a b"}``, values unparsed."""
    parsed = {}
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ParameterError(
                f"-p {assignment!r}: give parameters as NAME=VALUE, e.g. -p year=2020"
            )
        parsed[name.strip()] = value
    return parsed


def coerce(name: str, value: Any, default: Any, path: Path) -> Any:
    """``value`` (a string from the command line, or a Python value) as the type of ``default``."""
    if isinstance(default, Expression) or default is None:
        return literal_or_expression(value) if isinstance(value, str) else value
    expected = type(default)
    if not isinstance(value, str):
        if isinstance(value, expected) or (expected is float and type(value) is int):
            return value
        raise wrong_type(name, value, default, path)
    if expected is str:
        return value
    if expected is bool:
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise wrong_type(name, value, default, path)
    if expected in (int, float):
        try:
            return expected(value)
        except ValueError:
            raise wrong_type(name, value, default, path) from None
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise wrong_type(name, value, default, path) from None
    if not isinstance(parsed, expected):
        raise wrong_type(name, value, default, path)
    return parsed


def wrong_type(name: str, value: Any, default: Any, path: Path) -> ParameterError:
    return ParameterError(
        f"parameter {name!r} of {path.name} takes a {type(default).__name__} "
        f"(its default is {default!r}); {value!r} is not one"
    )


def validate_parameters(path: Path, given: dict[str, Any]) -> dict[str, Any]:
    """The job's parameters: ``given`` checked against what ``path`` declares, typed.

    Raises
    ------
    ParameterError
        A name the notebook or script does not declare, or a value of the wrong type; the
        message names the parameter and lists those that exist.
    """
    declared = declared_parameters(path)
    unknown = sorted(set(given) - set(declared))
    if unknown:
        where = "its `parameters` cell" if path.suffix == ".ipynb" else "its parameters(...) call"
        known = ", ".join(sorted(declared)) or "none"
        raise ParameterError(
            f"{path.name} has no parameter {unknown[0]!r} in {where} (it has: {known})"
        )
    values = {name: coerce(name, value, declared[name], path) for name, value in given.items()}
    try:
        json.dumps(values)
    except TypeError as error:
        raise ParameterError(f"parameters of {path.name} must be JSON values: {error}") from None
    return values


def parameters(**defaults: Any) -> dict[str, Any]:
    """A script's parameters: the job's values (``-p NAME=VALUE``) over these defaults.

    Outside a job the defaults are returned as they are, so the script also runs by hand.
    """
    given = get_settings().job_parameters
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ParameterError(f"the job was given parameter {unknown[0]!r}, not declared here")
    return {**defaults, **given}
