"""The JSON reader against rapidjson 1.1.0 (the version TF Serving 2.19.1 pins,
tensorflow_serving/workspace.bzl), with ParseJson's flags (util/json_tensor.cc).

The cases below were checked against rapidjson itself. ``test_differential`` repeats that check
on thousands of generated bodies when rapidjson's headers are at hand:

    RAPIDJSON_INCLUDE=/path/to/rapidjson-1.1.0/include .venv/bin/python -m pytest \\
        tests/serving/test_json_reader.py

(it compiles ``rapidjson/oracle.cc`` with g++; without the headers it is skipped)."""

from __future__ import annotations

import math
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from headswitch.serving._json._reader import JsonObject, JsonSyntaxError, parse, to_bytes


def _read(body: bytes) -> str:
    """The canonical form the oracle prints: V <value> or E <message> at offset: N."""
    if not body:
        return "E The document is empty"
    try:
        return "V " + _dump(parse(body))
    except JsonSyntaxError as exc:
        return f"E {exc.message} at offset: {exc.offset}"


def _dump(value: Any) -> str:
    if value is None:
        return "n"
    if value is True:
        return "t"
    if value is False:
        return "f"
    if isinstance(value, str):
        return "s" + to_bytes(value).hex()
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return "d" + struct.pack(">d", value).hex()
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    assert isinstance(value, JsonObject)
    return "{" + ",".join(to_bytes(k).hex() + ":" + _dump(v) for k, v in value.members) + "}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a": 1}', "V {61:i1}"),
        (b"{", "E Missing a name for object member. at offset: 1"),
        (b'"\\ud800"', "E The surrogate pair in string is invalid. at offset: 1"),
        (b'"\\udc00"', "V sedb080"),  # a lone low surrogate: kept as three bytes
        (b'"\\ud83d\\ude00"', "V sf09f9880"),
        (b'[1, NaN.5, -Inf, Infinity]',
         "V [i1,d3fe0000000000000,dfff0000000000000,d7ff0000000000000]"),
        (b'\xef\xbb\xbf{"x":"\xff"}', "V {78:sff}"),  # BOM skipped, raw bytes kept
        (b'{"a":1,"a":2}', "V {61:i1,61:i2}"),  # duplicates kept in order
        (b'{"a":"x\x00y"}', "E Missing a closing quotation mark in string. at offset: 7"),
        (b'["a\x01"]', "E Invalid escape character in string. at offset: 3"),
        (b"[1.]", "E Miss fraction part in number. at offset: 3"),
        (b"[1e400]", "E Number too big to be stored in double. at offset: 1"),
        (b"[18446744073709551616]", "V [d43f0000000000000]"),
        (b"[-9223372036854775808, 18446744073709551615]",
         "V [i-9223372036854775808,i18446744073709551615]"),
        (b"[tru]", "E Invalid value. at offset: 4"),
        (b"]", "E The document is empty. at offset: 0"),
        (b'{"a": 1} trailing', "V {61:i1}"),
    ],
)
def test_reads_as_rapidjson(body: bytes, expected: str) -> None:
    assert _read(body) == expected


def test_no_nesting_limit() -> None:
    depth = 200_000
    value = parse(b"[" * depth + b"1" + b"]" * depth)
    for _ in range(depth):
        value = value[0]
    assert value == 1


def test_valid_bodies_match_the_fast_path() -> None:
    """A body Python's decoder reads is read with the same values by the exact parser."""
    from headswitch.serving._json._reader import _parse_exact

    body = ('{"instances": [{"text": "caf\\u00e9 \\ud83d\\ude00 \u00e9", "task_id": 3}, '
            '{"text": "x", "task_id": -0, "f": [0.1, 1e-7, 123456789.123456789, NaN]}]}').encode()
    fast, exact = parse(body), _parse_exact(body, 0)
    assert _dump(fast) == _dump(exact)
    assert math.isnan(fast.find("instances")[1].find("f")[3])


def _oracle() -> Path | None:
    include = os.environ.get("RAPIDJSON_INCLUDE")
    compiler = shutil.which("g++")
    if not include or compiler is None:
        return None
    binary = Path(os.environ.get("TMPDIR", "/tmp")) / "headswitch-rapidjson-oracle"
    source = Path(__file__).with_name("rapidjson") / "oracle.cc"
    subprocess.run([compiler, "-O2", "-std=c++17", "-w", f"-I{include}", str(source), "-o",
                    str(binary)], check=True)
    return binary


def _bodies(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    pieces = [b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b"\\u", b"\\ud800", b"\\udc00",
              b"\\ud83d\\ude00", b"a", b"1", b"-", b".", b"e", b"N", b"I", b"Inf", b"NaN",
              b"nul", b"tru", b" ", b"\x00", b"\xef\xbb\xbf", b"\xff", b"\xc3\xa9", b"\x01",
              b'"k":', b"0", b"-0", b"1e", b"1.", b"12345678901234567890", b"1e308", b"0.1"]
    bodies = [b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
              for _ in range(count)]
    valid = b'{"instances": [{"text": "a\\u00e9\\ud83d\\ude00", "task_id": [1, -2.5e-3, 7]}]}'
    for _ in range(count // 2):
        body = bytearray(valid)
        for _ in range(rng.randint(1, 3)):
            body[rng.randrange(len(body))] = rng.choice(b'{}[]:,"\\u0123456789.eE+-N\x00\xff ')
        bodies.append(bytes(body))
    return bodies


def test_differential() -> None:
    binary = _oracle()
    if binary is None:
        pytest.skip("set RAPIDJSON_INCLUDE to rapidjson 1.1.0's include/ (and have g++) to "
                    "compare with rapidjson itself")
    bodies = _bodies(20_000, seed=1)
    data = b"".join(struct.pack("<I", len(b)) + b for b in bodies)
    out = subprocess.run([str(binary)], input=data, capture_output=True, check=True).stdout
    expected = out.decode("latin-1").split("\n")[:-1]
    differ = [(b, e, _read(b)) for b, e in zip(bodies, expected) if _read(b) != e]
    assert not differ, differ[:5]
