"""json_text.loads must be json.loads, only sooner: the same values for every body, the same errors for every other."""
from __future__ import annotations

import json
import math
import random
import struct
from pathlib import Path

import pytest

from cds_hooks import json_text
from cds_hooks.json_text import finite_number

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def _same(left, right) -> bool:
    # repr tells -0.0 from 0.0 and 1 from 1.0, which == does not.
    return repr(left) == repr(right)


@pytest.mark.parametrize("path", sorted(FIXTURES.rglob("*.json")), ids=lambda p: str(p.relative_to(FIXTURES)))
def test_every_fixture_reads_as_json_loads_reads_it(path: Path):
    data = path.read_bytes()
    assert _same(json_text.loads(data), json.loads(data))


@pytest.mark.parametrize("text", [
    b'-0', b'-0.0e0', b'0e0', b'1E-2', b'0.1e-400', b'123456789012345678901234567890', b'9' * 4000,
    b'"\\u0000"', b'"\\/"', b'"\\uD83D\\uDE00"', b'"caf\xc3\xa9"', b'{"a":1,"a":2}', b'\t[\r\n]\n', b'true', b'null',
])
def test_json_values_read_as_json_loads_reads_them(text: bytes):
    assert _same(json_text.loads(text), json.loads(text))


@pytest.mark.parametrize("text", [
    # What msgspec refuses but json.loads reads: a byte-order mark, UTF-16, lone surrogates as escapes or as bytes,
    # and numbers beyond a double or beyond 64 bits.
    b'\xef\xbb\xbf{"a": 1}', '{"a": "b"}'.encode("utf-16"), b'"\\ud800"', b'"\\uDE00\\uD83D"', b'"\xed\xa0\x80"',
    b'1e999', b'-1e999', b'9' * 4300,
])
def test_what_msgspec_refuses_is_read_by_json_loads(text: bytes):
    assert _same(json_text.loads(text), json.loads(text))


@pytest.mark.parametrize("text", [
    # Exponents of six digits and more, brought back into range by the digits before them: msgspec's own conversion
    # reads only five exponent digits and gave 1e+299, 1.0 and 55.0 where json.loads gives inf, inf and 0.0.
    b"0." + b"0" * 9700 + b"1e100000", b"0." + b"0" * 12344 + b"1e123456", b"55" + b"0" * 10000 + b"e-100000",
    b"0." + b"0" * 99999 + b"1e100000", b"[1e0000000000000000001, -2.5E-0000000000000000000003]",
])
def test_long_exponents_read_as_json_loads_reads_them(text: bytes):
    assert _same(json_text.loads(text), json.loads(text))


def test_a_long_exponent_out_of_range_still_meets_the_callers_options():
    # The service's own parse_float, which refuses what a double cannot hold.
    with pytest.raises(ValueError, match="out of range"):
        json_text.loads(b"0." + b"0" * 9700 + b"1e100000", parse_float=finite_number)


@pytest.mark.parametrize("text", [
    b'01', b'1.', b'.5', b'+1', b'[1 2]', b'{"a":1,}', b"{'a':1}", b'"a\x01b"', b'"\\x41"', b'tru', b'{"a":1} x',
    b'\xc2\xa01', b'"\xc3\x28"', b'', b'9' * 4301,
])
def test_what_json_loads_refuses_fails_with_its_error(text: bytes):
    with pytest.raises(ValueError) as expected:
        json.loads(text)
    with pytest.raises(type(expected.value)) as raised:
        json_text.loads(text)
    assert str(raised.value) == str(expected.value)


def test_the_callers_options_apply_to_what_msgspec_refuses():
    def refuse(name):
        raise ValueError(f"{name} refused")

    with pytest.raises(ValueError, match="NaN refused"):
        json_text.loads(b'{"x": NaN}', parse_constant=refuse)
    assert math.isnan(json_text.loads(b'{"x": NaN}')["x"])


def test_numbers_read_to_the_same_double():
    generator = random.Random(20261123)
    texts = []
    for _ in range(20_000):
        number = struct.unpack("<d", generator.getrandbits(64).to_bytes(8, "little"))[0]
        if math.isfinite(number):
            texts += [repr(number), f"{number:.17e}", f"{number:.5g}"]
        digits = generator.randint(1, 10 ** generator.randint(1, 25))
        texts.append(f"{digits}.{generator.randint(0, 10 ** 20)}e{generator.randint(-330, 300)}")
    body = ("[" + ",".join(texts) + "]").encode()
    assert _same(json_text.loads(body), json.loads(body))
