"""Reading a tool parameter's JSON schema: its types, whether it allows null, and its wording
for the model (tool instructions, error messages)."""

from __future__ import annotations

from typing import Any

from inspect_ai.tool import ToolInfo
from inspect_ai.util import JSONSchema

from charbench.toolcalls.common import _short_json


def _types_of(schema: JSONSchema) -> set[str]:
    types: set[str] = set()
    if isinstance(schema.type, str):
        types.add(schema.type)
    elif isinstance(schema.type, list):
        types.update(schema.type)
    for option in schema.anyOf or []:
        types |= _types_of(option)
    return types


def _allows_null(schema: JSONSchema) -> bool:
    types = _types_of(schema)
    return not types or "null" in types or (schema.enum is not None and None in schema.enum)


def _json_matches(value: Any, types: set[str]) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        return bool(types & {"integer", "number"})
    if isinstance(value, float):
        return "number" in types or ("integer" in types and value.is_integer())
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, list):
        return "array" in types
    return "object" in types


def _describe_type(schema: JSONSchema) -> str:
    return _describe_type_dict(schema.model_dump(exclude_none=True))


def _describe_type_dict(schema: dict[str, Any]) -> str:
    """Human wording of a JSON schema's type ("array of string", "one of 'a', 'b'")."""
    if isinstance(schema.get("enum"), list):
        return "one of " + ", ".join(_short_json(v) for v in schema["enum"])
    if isinstance(schema.get("anyOf"), list):
        return " or ".join(
            dict.fromkeys(_describe_type_dict(s) for s in schema["anyOf"] if isinstance(s, dict))
        )
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), dict):
        return f"array of {_describe_type_dict(schema['items'])}"
    return str(kind) if kind else "any JSON value"


def _describe_param(name: str, schema: JSONSchema, required: bool) -> str:
    parts = [_describe_type(schema), "required" if required else "optional"]
    if schema.default is not None:
        parts.append(f"default {_short_json(schema.default)}")
    line = f"- {name} ({', '.join(parts)})"
    if schema.description and schema.description.strip():
        line += f": {schema.description.strip()}"
    return line


def _signature(tool: ToolInfo) -> str:
    props = tool.parameters.properties
    if not props:
        return "none"
    required = set(tool.parameters.required)
    return ", ".join(
        f"{p} ({_describe_type(s)}, {'required' if p in required else 'optional'})"
        for p, s in props.items()
    )


def _placeholder(schema: JSONSchema) -> Any:
    if schema.enum:
        return schema.enum[0]
    types = _types_of(schema)
    for kind, value in (
        ("string", "..."),
        ("integer", 0),
        ("number", 0),
        ("boolean", True),
        ("array", []),
        ("object", {}),
    ):
        if kind in types:
            return value
    return "..."
