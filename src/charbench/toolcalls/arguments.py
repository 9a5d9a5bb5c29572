"""Arguments of a recognised call: map key spellings onto the tool's parameters, apply the
conservative coercions, and validate against the tool's JSON schema as Inspect's
``execute_tools`` does (jsonschema Draft 7), so that a call that would fail there is reported
as a parse error the model can act on, with the expected types."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable
from typing import Any

import jsonschema
from inspect_ai.tool import ToolInfo
from inspect_ai.util import JSONSchema

from charbench.toolcalls.common import (
    _clip,
    _fix_surrogates,
    _Item,
    _json_type,
    _norm_name,
    _short_json,
)
from charbench.toolcalls.lenient_json import _loads_lenient
from charbench.toolcalls.schema import (
    _allows_null,
    _describe_type,
    _describe_type_dict,
    _json_matches,
    _signature,
    _types_of,
)

_INT_RE = re.compile(r"[+-]?\d{1,18}")


_FLOAT_RE = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _validate_args(tool: ToolInfo, args: dict[str, Any], by_norm: dict[str, str | None]) -> _Item:
    params = tool.parameters
    props = params.properties
    required = set(params.required)
    extras_allowed = params.additionalProperties is not False
    out: dict[str, Any] = {}
    unexpected: list[str] = []
    for key, value in args.items():
        target = key if key in props else by_norm.get(_norm_name(key))
        if target is None or (target != key and target in args):
            if extras_allowed:
                out[key] = value
            else:
                unexpected.append(key)
            continue
        out[target] = value
    problems: list[str] = []
    for pname in list(out):
        if pname not in props:
            continue
        schema = props[pname]
        value = out[pname]
        if value is None and not _allows_null(schema):
            if pname in required:
                problems.append(
                    f"argument '{pname}' is required and cannot be null "
                    f"(expected {_describe_type(schema)})"
                )
            else:
                del out[pname]
            continue
        out[pname] = _coerce(value, schema)
    missing = [p for p in params.required if p not in out]
    if missing:
        described = ", ".join(
            f"'{p}' ({_describe_type(props[p])})" if p in props else f"'{p}'" for p in missing
        )
        plural = "s" if len(missing) > 1 else ""
        problems.append(f"missing required argument{plural} {described}")
    if unexpected:
        shown = ", ".join(f"'{_clip(_fix_surrogates(k), 40)}'" for k in unexpected[:5])
        plural = "s" if len(unexpected) > 1 else ""
        problems.append(f"unexpected argument{plural} {shown}")
    problems += _schema_problems(tool, out)
    if problems:
        return _Item(
            tool.name,
            {},
            f"Invalid arguments for tool '{tool.name}': {'; '.join(problems)}. "
            f"Expected arguments: {_signature(tool)}.",
        )
    return _Item(tool.name, out)


def _schema_problems(tool: ToolInfo, args: dict[str, Any]) -> list[str]:
    """Validate as Inspect's ``execute_tools`` does (jsonschema Draft 7)."""
    validator = _validator(
        json.dumps(tool.parameters.model_dump(exclude_none=True), sort_keys=True)
    )
    problems: list[str] = []
    for error in sorted(validator.iter_errors(args), key=lambda e: list(map(str, e.absolute_path))):
        path = _path(error.absolute_path)
        if not path and error.validator in ("required", "additionalProperties"):
            continue  # reported by the caller, with the expected types
        where = f"argument '{path}'" if path else "the arguments"
        if error.validator == "type":
            expected = error.schema if isinstance(error.schema, dict) else {}
            problems.append(
                f"{where} must be {_describe_type_dict(expected)}, got "
                f"{_json_type(error.instance)} {_clip(_short_json(error.instance), 40)}"
            )
        elif error.validator == "enum":
            allowed = ", ".join(_short_json(v) for v in error.validator_value)
            problems.append(
                f"{where} must be one of {allowed}, got {_clip(_short_json(error.instance), 40)}"
            )
        else:
            problems.append(f"{where}: {_clip(_fix_surrogates(error.message), 160)}")
        if len(problems) >= 5:
            break
    return problems


@functools.lru_cache(maxsize=256)
def _validator(schema_json: str) -> Any:
    return jsonschema.Draft7Validator(json.loads(schema_json))


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _coerce(value: Any, schema: JSONSchema) -> Any:
    """Apply the module's conservative coercions; unfixable values pass unchanged."""
    if schema.enum and isinstance(value, str) and value not in schema.enum:
        matches = [v for v in schema.enum if isinstance(v, str) and v.lower() == value.lower()]
        if len(matches) == 1:
            return matches[0]
    types = _types_of(schema)
    if not types or _json_matches(value, types):
        return value
    if isinstance(value, str):
        text = value.strip()
        if "integer" in types and _INT_RE.fullmatch(text):
            return int(text)
        if "number" in types and _INT_RE.fullmatch(text):
            return int(text)
        if "number" in types and _FLOAT_RE.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
        if "boolean" in types and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if text[:1] in "[{" and types & {"array", "object"}:
            decoded, failure = _loads_lenient(text)
            if failure is None and _json_matches(decoded, types & {"array", "object"}):
                return decoded
    if isinstance(value, int | float) and not isinstance(value, bool) and "string" in types:
        return json.dumps(value)
    if "array" in types and not isinstance(value, list | dict):
        item_schema = schema.items
        item = value if item_schema is None else _coerce(value, item_schema)
        item_types = _types_of(item_schema) if item_schema is not None else set()
        if not item_types or _json_matches(item, item_types):
            return [item]
    return value
