"""The errors of charbench's data files: which file, which field, what is wrong (a leaf).

:class:`DataError` (a ``ValueError``) and its kinds :class:`WorkplaceError` and
:class:`ScenarioError` carry the file and the field path (``people[3].email``) of the first
problem found. :func:`data_error` builds one from a pydantic ``ValidationError``: the path
from pydantic's error location, written as in the file (aliases, list indices), and a plain
message (an unknown field lists the allowed ones).
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError


class DataError(ValueError):
    """A workplace or scenario data file is malformed.

    Attributes:
        file: the file (or ``<string>``) that was being read.
        field: dotted path of the offending field (``""`` for the whole file).
    """

    def __init__(self, file: object, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        where = f"{self.file}: {field}" if field else self.file
        super().__init__(f"{where}: {message}")


class WorkplaceError(DataError):
    """``workplace.yaml`` is malformed."""


class ScenarioError(DataError):
    """A scenario file is malformed; the message names the file and the field."""


_MESSAGES = {
    "missing": "missing required field",
    "extra_forbidden": "unknown field; allowed fields here: {allowed}",
    "invalid_key": "keys must be text, got {kind}",
    "string_type": "expected text, got {kind}",
    "model_type": "expected a mapping, got {kind}",
    "dict_type": "expected a mapping, got {kind}",
    "bool_type": "expected true or false",
    "too_short": "expected at least {min_length} item(s), got {actual_length}",
}


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The field names (as written in files) of the model found at ``loc`` under ``model``."""
    node: Any = model
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            fields = {f.alias or name: f for name, f in node.model_fields.items()}
            node = fields[part].annotation if part in fields else None
        else:  # a tuple (int part), a dict (str part) or an Optional: its model argument
            args = [a for a in get_args(node) if a is not type(None) and a is not Ellipsis]
            node = args[-1] if args else None
    if isinstance(node, type) and issubclass(node, BaseModel):
        return ", ".join(sorted(f.alias or name for name, f in node.model_fields.items()))
    return "see the file format"


def data_error(
    exc: ValidationError,
    file: object,
    error: type[DataError],
    model: type[BaseModel],
    prefix: str = "",
) -> DataError:
    """The first problem of ``model``'s ``ValidationError`` as ``error(file, field, message)``.

    The field path joins the error location as written in the file (``people[3].email``,
    ``policies.budget.keywords``) after ``prefix``; the message is ours for pydantic's
    generic types (an unknown field lists the allowed ones) and the validator's own text
    otherwise.
    """
    first = exc.errors(include_url=False)[0]
    where = prefix
    for part in first["loc"]:
        if part != "[key]":  # pydantic's marker for a dict key that failed
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else part)
    template = _MESSAGES.get("invalid_key" if "[key]" in first["loc"] else first["type"])
    ctx = {**(first.get("ctx") or {}), "kind": type(first.get("input")).__name__}
    if first["type"] == "extra_forbidden":
        ctx["allowed"] = _fields_at(model, first["loc"][:-1])
    message = template.format(**ctx) if template else first["msg"]
    return error(file, where, message)
