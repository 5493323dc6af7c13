"""Typed records to and from JSON: the one codec of the files producers and consumers share
(manifest.json, the trainer's metrics.json). Dataclass fields are decoded by their type
annotations; keys a record does not know are ignored, so a reader accepts fields a later
version of the same format version adds. No heavy imports."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any


def encode(value: Any) -> Any:
    """`value` as JSON-ready data: dataclasses as objects (or their own `to_json`), tuples as lists."""
    if hasattr(value, "to_json"):
        return value.to_json()
    if dataclasses.is_dataclass(value):
        return encode_fields(value)
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def encode_fields(record: Any) -> dict[str, Any]:
    """A dataclass's fields, each encoded: the body of a record's own `to_json`."""
    return {f.name: encode(getattr(record, f.name)) for f in dataclasses.fields(record)}


def decode(kind: type, data: dict[str, Any]) -> Any:
    """The dataclass `kind` from parsed JSON, each field by its annotation."""
    hints = typing.get_type_hints(kind)
    fields = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: _value(hints[k], v) for k, v in data.items() if k in fields})


def _value(kind: Any, value: Any) -> Any:
    """`value` (parsed JSON) as an instance of the type annotation `kind`."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        return _value(next(a for a in args if a is not type(None)), value)
    if origin is tuple:
        return tuple(_value(args[0], v) for v in value)
    if origin is list:
        return [_value(args[0], v) for v in value] if args else list(value)
    if origin is dict:
        return {k: _value(args[1], v) for k, v in value.items()}
    if isinstance(kind, type) and hasattr(kind, "from_json"):
        return kind.from_json(value)
    if dataclasses.is_dataclass(kind):
        return decode(kind, value)
    return value
