"""Reading a JSON request body exactly as TF Serving 2.19.1 reads it.

TF Serving parses request bodies with rapidjson 1.1.0 (``util/json_tensor.cc`` ``ParseJson``:
flags ``kParseIterativeFlag | kParseNanAndInfFlag | kParseStopWhenDoneFlag``, an
``EncodedInputStream<UTF8<>, MemoryStream>``). What that means, and what this module reproduces:

- no nesting limit (the parser is iterative; the server refuses bodies nested deeper than any
  tensor needs before they reach this module, ``_scan``); bytes after the first complete value
  are ignored;
- ``NaN``, ``Inf``, ``Infinity`` (optionally signed) are numbers;
- strings are not checked for valid UTF-8: raw bytes are kept as they are; a raw control
  character is an error, a raw NUL byte (anywhere) ends the input;
- a ``\\u`` escape of a high surrogate must be followed by a low one, else "The surrogate pair in
  string is invalid."; a lone low surrogate is kept (encoded as three bytes);
- leading 0xEF, 0xBB, 0xBF bytes (a UTF-8 byte order mark) are skipped, each on its own;
- objects keep every member in order, duplicates included (lookups find the first);
- integers keep their value within int64/uint64; others become doubles, computed as rapidjson
  does without ``kParseFullPrecisionFlag`` (which can differ from correct rounding);
- errors carry rapidjson's message and byte offset.

Strings come back as ``str`` holding the exact bytes (``bytes.decode("utf-8",
"surrogateescape")``; :func:`to_bytes` gives the bytes back). Valid UTF-8 bodies without those
special cases go through Python's C JSON decoder, which builds the same values; the rest through
a port of rapidjson's state machine.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

__all__ = ["JsonObject", "JsonSyntaxError", "parse", "rapidjson_double", "to_bytes"]


class JsonSyntaxError(Exception):
    """A body rapidjson does not accept: its message and the byte offset it reports."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at offset: {offset}")
        self.message = message
        self.offset = offset


class JsonObject:
    """A JSON object as rapidjson keeps it: members in document order, duplicates included."""

    __slots__ = ("members",)

    def __init__(self, members: list[tuple[str, Any]] | None = None) -> None:
        self.members: list[tuple[str, Any]] = [] if members is None else members

    def find(self, key: str, default: Any = None) -> Any:
        """``FindMember``: the value of the first member with this name."""
        for name, value in self.members:
            if name == key:
                return value
        return default

    def __contains__(self, key: object) -> bool:
        return any(name == key for name, _ in self.members)

    def __len__(self) -> int:
        return len(self.members)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self.members)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JsonObject):
            return self.members == other.members
        if isinstance(other, dict):
            return len(other) == len(self.members) and dict(self.members) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"JsonObject({self.members!r})"


def to_bytes(text: str) -> bytes:
    """The exact bytes a parsed string holds."""
    return text.encode("utf-8", "surrogateescape")


def _from_bytes(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------------------------
# Numbers: rapidjson's ParseNumber without kParseFullPrecisionFlag

_POW10 = [float(f"1e{n}") for n in range(309)]  # internal::Pow10: the literals 1e0 .. 1e308
_NUMBER = re.compile(rb"(-?)([0-9]*)(?:(\.)([0-9]*))?(?:([eE])([+-]?)([0-9]*))?")


def _fast_path(significand: float, exp: int) -> float:
    if exp < -308:
        return 0.0
    if exp >= 0:
        return significand * _POW10[exp]
    return significand / _POW10[-exp]


def _strtod_normal_precision(d: float, p: int) -> float:
    if p < -308:
        return _fast_path(_fast_path(d, -308), p + 308)
    return _fast_path(d, p)


def rapidjson_double(token: str) -> float:
    """The double rapidjson reads for a number token with a fraction or exponent (the token is
    known to be well formed: Python's JSON grammar for numbers is JSON's)."""
    value, end = _parse_number(token.encode("ascii"), 0)
    assert end == len(token) and isinstance(value, float)
    return value


def _parse_number(data: bytes, pos: int) -> tuple[Any, int]:
    """``ParseNumber`` at ``data[pos]``: (int or float, end). Raises :class:`JsonSyntaxError`."""
    start = pos
    n = len(data)
    minus = pos < n and data[pos] == 0x2D
    if minus:
        pos += 1
    i = 0  # the 32-bit accumulator, then the 64-bit one
    use64 = False
    use_double = False
    nan_or_inf = False
    digits = 0  # significandDigit
    d = 0.0
    c = data[pos] if pos < n else 0
    if c == 0x30:
        pos += 1
    elif 0x31 <= c <= 0x39:
        i = c - 0x30
        pos += 1
        limit32, last32 = (214748364, 0x38) if minus else (429496729, 0x35)
        while pos < n and 0x30 <= data[pos] <= 0x39:
            if i >= limit32 and (i != limit32 or data[pos] > last32):
                use64 = True
                break
            i = i * 10 + data[pos] - 0x30
            digits += 1
            pos += 1
    elif c in (0x49, 0x4E):  # 'I', 'N'
        nan_or_inf = True

        def consume(expected: int) -> bool:
            nonlocal pos
            if pos < n and data[pos] == expected:
                pos += 1
                return True
            return False

        # The same short-circuit Consume() chain as rapidjson ("NInf" reads as Inf).
        if consume(0x4E) and consume(0x61) and consume(0x4E):
            d = math.nan
        elif consume(0x49) and consume(0x6E) and consume(0x66):
            d = -math.inf if minus else math.inf
            if pos < n and data[pos] == 0x69 and not all(consume(ch) for ch in b"inity"):
                raise JsonSyntaxError("Invalid value.", pos)
        else:
            raise JsonSyntaxError("Invalid value.", pos)
    else:
        raise JsonSyntaxError("Invalid value.", pos)

    if use64:
        limit64, last64 = (0x0CCCCCCCCCCCCCCC, 0x38) if minus else (0x1999999999999999, 0x35)
        while pos < n and 0x30 <= data[pos] <= 0x39:
            if i >= limit64 and (i != limit64 or data[pos] > last64):
                d = float(i)
                use_double = True
                break
            i = i * 10 + data[pos] - 0x30
            digits += 1
            pos += 1
    if use_double:
        while pos < n and 0x30 <= data[pos] <= 0x39:
            if d >= 1.7976931348623157e307:
                raise JsonSyntaxError("Number too big to be stored in double.", start)
            d = d * 10 + (data[pos] - 0x30)
            pos += 1

    exp_frac = 0
    if pos < n and data[pos] == 0x2E:
        pos += 1
        if not (pos < n and 0x30 <= data[pos] <= 0x39):
            raise JsonSyntaxError("Miss fraction part in number.", pos)
        if not use_double:
            # The first digits go into the 64-bit integer while it stays below 2^53.
            while pos < n and 0x30 <= data[pos] <= 0x39:
                if i > 0x1FFFFFFFFFFFFF:
                    break
                i = i * 10 + data[pos] - 0x30
                pos += 1
                exp_frac -= 1
                if i != 0:
                    digits += 1
            d = float(i)
            use_double = True
        while pos < n and 0x30 <= data[pos] <= 0x39:
            if digits < 17:
                d = d * 10.0 + (data[pos] - 0x30)
                exp_frac -= 1
                if d > 0.0:
                    digits += 1
            pos += 1

    exp = 0
    if pos < n and data[pos] in (0x65, 0x45):  # 'e', 'E'
        pos += 1
        if not use_double:
            d = float(i)
            use_double = True
        exp_minus = False
        if pos < n and data[pos] == 0x2B:
            pos += 1
        elif pos < n and data[pos] == 0x2D:
            exp_minus = True
            pos += 1
        if not (pos < n and 0x30 <= data[pos] <= 0x39):
            raise JsonSyntaxError("Miss exponent in number.", pos)
        exp = data[pos] - 0x30
        pos += 1
        if exp_minus:
            while pos < n and 0x30 <= data[pos] <= 0x39:
                exp = exp * 10 + data[pos] - 0x30
                pos += 1
                if exp >= 214748364:
                    while pos < n and 0x30 <= data[pos] <= 0x39:
                        pos += 1
            exp = -exp
        else:
            max_exp = 308 - exp_frac
            while pos < n and 0x30 <= data[pos] <= 0x39:
                exp = exp * 10 + data[pos] - 0x30
                pos += 1
                if exp > max_exp:
                    raise JsonSyntaxError("Number too big to be stored in double.", start)

    if use_double:
        d = _strtod_normal_precision(d, exp + exp_frac)
        return (-d if minus else d), pos
    if nan_or_inf:
        return d, pos
    return (-i if minus else i), pos


# --------------------------------------------------------------------------------------------
# The iterative parser (GenericReader::IterativeParse)

(
    _START,
    _FINISH,
    _ERROR,
    _OBJECT_INITIAL,
    _MEMBER_KEY,
    _KEY_VALUE_DELIMITER,
    _MEMBER_VALUE,
    _MEMBER_DELIMITER,
    _OBJECT_FINISH,
    _ARRAY_INITIAL,
    _ELEMENT,
    _ELEMENT_DELIMITER,
    _ARRAY_FINISH,
    _VALUE,
) = range(14)

# Tokens: [ ] { } , : " f t n and everything else (a number, or an invalid value).
_LB, _RB, _LC, _RC, _COMMA, _COLON, _STRING, _FALSE, _TRUE, _NULL, _NUMBER_TOKEN = range(11)
_TOKEN = [_NUMBER_TOKEN] * 256
for _char, _token in zip(b'[]{},:"ftn', range(10)):
    _TOKEN[_char] = _token

_E = _ERROR
_PREDICT: dict[int, list[int]] = {
    _START: [_ARRAY_INITIAL, _E, _OBJECT_INITIAL, _E, _E, _E] + [_VALUE] * 5,
    _OBJECT_INITIAL: [_E, _E, _E, _OBJECT_FINISH, _E, _E, _MEMBER_KEY, _E, _E, _E, _E],
    _MEMBER_KEY: [_E, _E, _E, _E, _E, _KEY_VALUE_DELIMITER, _E, _E, _E, _E, _E],
    _KEY_VALUE_DELIMITER: [_ARRAY_INITIAL, _E, _OBJECT_INITIAL, _E, _E, _E] + [_MEMBER_VALUE] * 5,
    _MEMBER_VALUE: [_E, _E, _E, _OBJECT_FINISH, _MEMBER_DELIMITER, _E, _E, _E, _E, _E, _E],
    _MEMBER_DELIMITER: [_E, _E, _E, _OBJECT_FINISH, _E, _E, _MEMBER_KEY, _E, _E, _E, _E],
    _ARRAY_INITIAL: [_ARRAY_INITIAL, _ARRAY_FINISH, _OBJECT_INITIAL, _E, _E, _E] + [_ELEMENT] * 5,
    _ELEMENT: [_E, _ARRAY_FINISH, _E, _E, _ELEMENT_DELIMITER, _E, _E, _E, _E, _E, _E],
    _ELEMENT_DELIMITER: [_ARRAY_INITIAL, _ARRAY_FINISH, _OBJECT_INITIAL, _E, _E, _E]
    + [_ELEMENT] * 5,
}

_ERROR_MESSAGE = {  # HandleError: the state an unexpected token was met in
    _START: "The document is empty.",
    _OBJECT_INITIAL: "Missing a name for object member.",
    _MEMBER_DELIMITER: "Missing a name for object member.",
    _MEMBER_KEY: "Missing a colon after a name of object member.",
    _MEMBER_VALUE: "Missing a comma or '}' after an object member.",
    _KEY_VALUE_DELIMITER: "Invalid value.",
    _ARRAY_INITIAL: "Invalid value.",
    _ELEMENT_DELIMITER: "Invalid value.",
    _ELEMENT: "Missing a comma or ']' after an array element.",
}

_WHITESPACE = re.compile(rb"[ \n\r\t]*")
_PLAIN = re.compile(rb'[^"\\\x00-\x1f]*')
_ESCAPES = {
    0x22: b'"',
    0x5C: b"\\",
    0x2F: b"/",
    0x62: b"\b",
    0x66: b"\f",
    0x6E: b"\n",
    0x72: b"\r",
    0x74: b"\t",
}
_HEX = re.compile(rb"[0-9A-Fa-f]{4}")
_NEXT_SCALAR_ELEMENT = re.compile(rb"[ \n\r\t]*,[ \n\r\t]*(?=[^\[\]{},: \n\r\t])")


def _hex4(data: bytes, pos: int, escape_offset: int) -> int:
    if _HEX.match(data, pos) is None:
        raise JsonSyntaxError("Incorrect hex digit after \\u escape in string.", escape_offset)
    return int(data[pos : pos + 4], 16)


def _parse_string(data: bytes, pos: int) -> tuple[str, int]:
    """``ParseString`` with ``data[pos] == '"'``: (text, end)."""
    pos += 1
    out = bytearray()
    n = len(data)
    while True:
        match = _PLAIN.match(data, pos)
        assert match is not None
        out += match.group()
        pos = match.end()
        if pos >= n:
            raise JsonSyntaxError("Missing a closing quotation mark in string.", pos)
        c = data[pos]
        if c == 0x22:
            return _from_bytes(bytes(out)), pos + 1
        if c != 0x5C:  # a raw control character
            raise JsonSyntaxError("Invalid escape character in string.", pos)
        escape_offset = pos
        pos += 1
        e = data[pos] if pos < n else 0
        simple = _ESCAPES.get(e)
        if simple is not None:
            out += simple
            pos += 1
        elif e == 0x75:  # 'u'
            code = _hex4(data, pos + 1, escape_offset)
            pos += 5
            if 0xD800 <= code <= 0xDBFF:
                if not data.startswith(b"\\u", pos):
                    raise JsonSyntaxError("The surrogate pair in string is invalid.", escape_offset)
                low = _hex4(data, pos + 2, escape_offset)
                if not 0xDC00 <= low <= 0xDFFF:
                    raise JsonSyntaxError("The surrogate pair in string is invalid.", escape_offset)
                code = (((code - 0xD800) << 10) | (low - 0xDC00)) + 0x10000
                pos += 6
            out += chr(code).encode("utf-8", "surrogatepass")
        else:
            raise JsonSyntaxError("Invalid escape character in string.", escape_offset)


def _parse_literal(data: bytes, pos: int, word: bytes, value: Any) -> tuple[Any, int]:
    """``ParseNull`` / ``ParseTrue`` / ``ParseFalse``: the error is where matching stopped."""
    k = 1
    while k < len(word):
        if pos + k >= len(data) or data[pos + k] != word[k]:
            raise JsonSyntaxError("Invalid value.", pos + k)
        k += 1
    return value, pos + k


_SIMPLE_STRING = re.compile(rb'"([^"\\\x00-\x1f]*)"')
_SMALL_INT = re.compile(rb"-?(?:0|[1-9][0-9]{0,8})(?![0-9.eE])")


def _parse_scalar(data: bytes, pos: int) -> tuple[Any, int]:
    """``ParseValue`` for a value that is not an object or array."""
    c = data[pos]
    if c == 0x22:
        match = _SIMPLE_STRING.match(data, pos)
        if match is not None:
            return _from_bytes(match.group(1)), match.end()
        return _parse_string(data, pos)
    match = _SMALL_INT.match(data, pos)
    if match is not None:
        return int(match.group()), match.end()
    if c == 0x6E:
        return _parse_literal(data, pos, b"null", None)
    if c == 0x74:
        return _parse_literal(data, pos, b"true", True)
    if c == 0x66:
        return _parse_literal(data, pos, b"false", False)
    return _parse_number(data, pos)


def _parse_exact(data: bytes, pos: int) -> Any:
    """``IterativeParse`` from ``pos``; ``data`` ends at its first NUL byte."""
    n = len(data)
    state = _START
    root: Any = None
    frames: list[tuple[Any, int]] = []  # (container, state to return to)
    key = ""
    pos = _WHITESPACE.match(data, pos).end()  # type: ignore[union-attr]
    while pos < n:
        token = _TOKEN[data[pos]]
        target = _PREDICT[state][token] if state in _PREDICT else _ERROR
        if target == _ERROR:
            raise JsonSyntaxError(_ERROR_MESSAGE[state], pos)
        if target in (_OBJECT_INITIAL, _ARRAY_INITIAL):
            container: Any = JsonObject() if target == _OBJECT_INITIAL else []
            if state in (_ARRAY_INITIAL, _ELEMENT_DELIMITER):
                frames[-1][0].append(container)
                back = _ELEMENT
            elif state == _KEY_VALUE_DELIMITER:
                frames[-1][0].members.append((key, container))
                back = _MEMBER_VALUE
            else:
                root = container
                back = state
            frames.append((container, back))
            pos += 1
            state = target
        elif target == _MEMBER_KEY:
            key, pos = _parse_string(data, pos)
            state = target
        elif target in (_KEY_VALUE_DELIMITER, _MEMBER_DELIMITER, _ELEMENT_DELIMITER):
            pos += 1
            state = target
        elif target == _MEMBER_VALUE:
            value, pos = _parse_scalar(data, pos)
            frames[-1][0].members.append((key, value))
            state = target
        elif target == _ELEMENT:
            append = frames[-1][0].append
            while True:  # "scalar, scalar, ...": the same transitions, taken in one go
                value, pos = _parse_scalar(data, pos)
                append(value)
                step = _NEXT_SCALAR_ELEMENT.match(data, pos)
                if step is None:
                    break
                pos = step.end()
            state = target
        elif target in (_OBJECT_FINISH, _ARRAY_FINISH):
            if state == _MEMBER_DELIMITER:  # a trailing comma
                raise JsonSyntaxError("Missing a name for object member.", pos)
            if state == _ELEMENT_DELIMITER:
                raise JsonSyntaxError("Invalid value.", pos)
            _, back = frames.pop()
            state = _FINISH if back == _START else back
            pos += 1
        else:  # _VALUE: a scalar at the root
            root, pos = _parse_scalar(data, pos)
            state = _FINISH
        if state == _FINISH:
            return root
        pos = _WHITESPACE.match(data, pos).end()  # type: ignore[union-attr]
    raise JsonSyntaxError(_ERROR_MESSAGE.get(state, "Unspecific syntax error."), pos)


# --------------------------------------------------------------------------------------------
# Entry point

# Python's decoder builds the same values as rapidjson for a container in a body whose strings
# are taken byte for byte (decoded with "surrogateescape"), except for: surrogate escapes that
# are not a high/low pair (an error, or a lone low surrogate rapidjson keeps as three bytes), and
# integers rapidjson turns into doubles (beyond int64/uint64).
_SURROGATE_ESCAPE = re.compile(rb"(\\+)u[dD]([89a-fA-F])[0-9a-fA-F]{2}")
_ANY_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]")
_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))


def _has_long_integer(body: bytes) -> bool:
    """Whether 19 digits follow each other somewhere (an integer rapidjson may read as a
    double)."""
    return b"0" * 19 in body.translate(_DIGIT_MAP)


def _rapidjson_int(token: str) -> Any:
    value = int(token)
    if -(2**63) <= value < 2**64:
        return value
    return _parse_number(token.encode("ascii"), 0)[0]


_DECODER = json.JSONDecoder(object_pairs_hook=JsonObject, parse_float=rapidjson_double)
_DECODER_BIG_INTS = json.JSONDecoder(
    object_pairs_hook=JsonObject, parse_float=rapidjson_double, parse_int=_rapidjson_int
)


def _surrogates_paired(body: bytes) -> bool:
    """Whether every ``\\uD800``-``\\uDFFF`` escape is half of a high/low pair."""
    if _ANY_SURROGATE.search(body) is None:
        return True
    if b"\\\\" not in body:  # no escaped backslash: every "\\u" starts an escape
        return _ANY_SURROGATE.search(_PAIR.sub(b"", body)) is None
    expect_low_at = -1
    for match in _SURROGATE_ESCAPE.finditer(body):
        if len(match.group(1)) % 2 == 0:  # "\\\\ud800": an escaped backslash, then text
            continue
        escape_start = match.end() - 6
        high = match.group(2) in b"89abAB"
        if expect_low_at >= 0:
            if high or escape_start != expect_low_at:
                return False
            expect_low_at = -1
        elif high:
            expect_low_at = match.end()
        else:
            return False
    return expect_low_at < 0


def _skip_bom(body: bytes) -> int:
    """``EncodedInputStream<UTF8<>, MemoryStream>`` skips 0xEF, 0xBB and 0xBF, each if there."""
    pos = 0
    for byte in (0xEF, 0xBB, 0xBF):
        if pos < len(body) and body[pos] == byte:
            pos += 1
    return pos


def parse(body: bytes) -> Any:
    """The value rapidjson reads from ``body`` (which must not be empty)."""
    nul = body.find(b"\x00")
    if nul >= 0:  # rapidjson's MemoryStream reads a NUL byte as the end of input
        body = body[:nul]
    start = _skip_bom(body)
    first = _WHITESPACE.match(body, start).end()  # type: ignore[union-attr]
    # Only a container: Python stops a root number or literal where rapidjson reads on.
    if body[first : first + 1] in (b"{", b"[") and _surrogates_paired(body):
        decoder = _DECODER_BIG_INTS if _has_long_integer(body) else _DECODER
        text = body[start:].decode("utf-8", "surrogateescape")
        try:
            value, _ = decoder.raw_decode(text, first - start)
        except (ValueError, RecursionError, JsonSyntaxError):
            pass  # rapidjson's message and offset come from the exact parser
        else:
            return value
    return _parse_exact(body, start)
