"""Frozen dataclasses ("records") as JSON objects: a strict reader and the writer it inverts.

A record is read from an object holding exactly its fields: a missing, unknown or mistyped
field raises `RecordMismatch` naming it by its dotted path (`envs.hopper.medium.sha256`). The
writer emits the fields in declaration order, so a file written by `json.dumps(to_json(r))`
reads back to `r` and writes back to the same bytes. Field types may be records, unions of
them, `tuple[X, ...]`, `dict[str, X]`, `Literal[...]`, `Any` and JSON scalars; a float field
keeps an int as read, for the same reason.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from typing import Any, Literal


class Unrecorded(enum.Enum):
    """The value of a field (typed `X | Unrecorded`) that records written before the field
    existed lack: read when it is absent, and left out when written, so old files keep their
    bytes."""

    UNRECORDED = "unrecorded"


UNRECORDED = Unrecorded.UNRECORDED


class RecordMismatch(Exception):
    """A part of the JSON that is not what the record says; the caller names the file."""


def from_json(kind: Any, value: Any, where: str = "") -> Any:
    """`value` (parsed JSON) read as `kind`; `where` is its dotted path, '' for a whole file."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if dataclasses.is_dataclass(kind):
        return _record_from_json(kind, value, where)
    if origin is types.UnionType:
        return _union_from_json(args, value, where)
    if origin is tuple and isinstance(value, list):
        return tuple(from_json(args[0], item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict and isinstance(value, dict):
        return {name: from_json(args[1], item, _child(where, name)) for name, item in value.items()}
    if origin is Literal and value in args:
        return value
    if kind is Any or _is_scalar(kind, value):
        return value
    raise RecordMismatch(f"field {where or '(the whole file)'} is {value!r}, not {_name(kind)}")


def to_json(value: Any) -> Any:
    """Records as objects of their fields in order (UNRECORDED ones left out), tuples as lists."""
    if dataclasses.is_dataclass(value):
        fields = ((field.name, getattr(value, field.name)) for field in dataclasses.fields(value))
        return {name: to_json(item) for name, item in fields if item is not UNRECORDED}
    if isinstance(value, tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {name: to_json(item) for name, item in value.items()}
    return value


@functools.cache
def _field_types(record: type) -> dict[str, Any]:
    hints = typing.get_type_hints(record)
    return {field.name: hints[field.name] for field in dataclasses.fields(record)}


def _is_scalar(kind: Any, value: Any) -> bool:
    """Whether JSON `value` is a `kind` (a bool is never a number)."""
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    allowed = (int, float) if kind is float else kind
    return isinstance(kind, type) and isinstance(value, allowed)


def _record_from_json(record: type, value: Any, where: str) -> Any:
    """A record from a JSON object holding exactly its fields (UNRECORDED ones may be absent)."""
    if not isinstance(value, dict):
        raise RecordMismatch(f"field {where or '(the whole file)'} is {value!r}, not an object")
    fields = _field_types(record)
    unknown = ", ".join(_child(where, name) for name in sorted(set(value) - set(fields)))
    read = {}
    for name, kind in fields.items():
        if name in value:
            read[name] = from_json(kind, value[name], _child(where, name))
        elif Unrecorded in typing.get_args(kind):
            read[name] = UNRECORDED
        else:
            found = f" (found {unknown} instead)" if unknown else ""
            raise RecordMismatch(f"field {_child(where, name)} is missing{found}")
    if unknown:
        raise RecordMismatch(f"unknown field {unknown} (not one this offrl reads)")
    return record(**read)


def _union_from_json(kinds: tuple[Any, ...], value: Any, where: str) -> Any:
    """The first alternative `value` reads as; of records, the one sharing most field names."""
    records = [kind for kind in kinds if dataclasses.is_dataclass(kind)]
    if records and isinstance(value, dict):
        closest = max(records, key=lambda record: len(set(_field_types(record)) & set(value)))
        return _record_from_json(closest, value, where)
    for kind in kinds:
        try:
            return from_json(kind, value, where)
        except RecordMismatch:
            continue
    raise RecordMismatch(f"field {where} is {value!r}, not {' or '.join(map(_name, kinds))}")


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


def _child(where: str, name: str) -> str:
    """The dotted path of field `name` of the object at `where`."""
    return f"{where}.{name}" if where else name
