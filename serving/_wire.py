"""What a protobuf request holds, counted on its wire format before it is parsed.

Parsing a message makes an entry for every element of a repeated field: an empty string takes
two bytes on the wire and many times that once parsed, so a few messages of millions of them
cost gigabytes before any check of this server can run. :func:`request_deserializer` walks a
large message's fields (no object per field, and it stops as soon as the count passes the
limit), counts the values of its repeated fields in every nested message, and hands a message
with more than the server's ``max_values`` to the handler as a :class:`Refused` instead of
parsing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import ServingError
from ._limits import Limits

# A smaller message cannot parse into much (a value is at least two bytes on the wire): it is
# parsed without a walk.
WALK_BYTES = 1 << 16
_MAX_NESTING = 100  # protobuf's own recursion limit; deeper messages fail to parse anyway
_VARINT_ENDS = bytes(range(0x80))  # bytes that end a varint


@dataclass(frozen=True)
class Refused:
    """A request refused before it was parsed: the error, and its size in bytes."""

    error: ServingError
    size: int

    def ByteSize(self) -> int:  # noqa: N802 - the name a parsed message has
        return self.size


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]  # IndexError at the end: a truncated message
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _skip_run(raw: bytes, pos: int, end: int, tag: int, most: int) -> tuple[int, int]:
    """Skip the elements that follow with the same one-byte tag and a one-byte length (up to
    ``most``): (position after them, how many)."""
    count = 0
    while count < most and pos + 1 < end and raw[pos] == tag:
        size = raw[pos + 1]
        if size >= 0x80:
            break
        pos += 2 + size
        count += 1
    return pos, count


def _packed_count(field: Any, blob: bytes) -> int:
    """Elements in a packed repeated numeric field."""
    from google.protobuf.descriptor import FieldDescriptor as F

    if field.type in (F.TYPE_FIXED32, F.TYPE_SFIXED32, F.TYPE_FLOAT):
        return len(blob) // 4
    if field.type in (F.TYPE_FIXED64, F.TYPE_SFIXED64, F.TYPE_DOUBLE):
        return len(blob) // 8
    return len(blob) - len(blob.translate(None, _VARINT_ENDS))


def count_values(raw: bytes, descriptor: Any, limit: int) -> int | None:
    """The elements of every repeated field in the message (nested messages included), or None
    as soon as they are more than ``limit``. A malformed message is counted up to where it
    goes wrong (the parser that follows reports the error)."""
    from google.protobuf.descriptor import FieldDescriptor as F

    count = 0
    stack: list[tuple[int, int, Any, int]] = [(0, len(raw), descriptor, 0)]
    try:
        while stack:
            pos, end, message, depth = stack.pop()
            while pos < end:
                tag, pos = _varint(raw, pos)
                number, kind = tag >> 3, tag & 7
                field = message.fields_by_number.get(number)
                repeated = field is not None and field.label == F.LABEL_REPEATED
                if kind == 0:
                    _, pos = _varint(raw, pos)
                elif kind == 1:
                    pos += 8
                elif kind == 5:
                    pos += 4
                elif kind == 2:
                    size, pos = _varint(raw, pos)
                    if field is not None and field.type == F.TYPE_MESSAGE:
                        if size and depth < _MAX_NESTING:
                            stack.append((pos + size, end, message, depth))
                            stack.append((pos, pos + size, field.message_type, depth + 1))
                            if repeated:
                                count += 1
                            break
                    elif repeated and field is not None and field.type not in (
                        F.TYPE_STRING, F.TYPE_BYTES
                    ):
                        count += _packed_count(field, raw[pos : pos + size])
                        repeated = False
                    pos += size
                else:
                    return count  # groups or garbage: the parser will say
                if repeated and kind != 2:
                    count += 1
                elif repeated and field is not None and field.type in (F.TYPE_STRING,
                                                                       F.TYPE_BYTES):
                    count += 1
                    if tag < 0x80:  # a run of this field's elements: the common, cheap walk
                        pos, more = _skip_run(raw, pos, end, tag, limit - count + 1)
                        count += more
                if count > limit:
                    return None
            if count > limit:
                return None
    except IndexError:
        pass
    return count


def request_deserializer(message_class: Any, limits: Limits) -> Callable[[bytes], Any]:
    """gRPC's ``request_deserializer`` for ``message_class``: the parsed message, or a
    :class:`Refused` for a large message that holds more than ``limits.max_values`` values."""
    descriptor = message_class.DESCRIPTOR

    def deserialize(raw: bytes) -> Any:
        if len(raw) > WALK_BYTES and count_values(raw, descriptor, limits.max_values) is None:
            return Refused(limits.values_refused("message holds"), len(raw))
        return message_class.FromString(raw)

    return deserialize
