"""Property-based fuzzing of firmware/jsonobj.py under CPython: any bytes give a dict or
a ValueError with a fixed text, exactly as the RFC 8259 reference (props.reference) has
it; json.dumps of any object within the bounds reads back equal; object_end finds where
an object ends. tests/test_json_differential.py compares with the MicroPython VM."""
import json

from hypothesis import given
from hypothesis import strategies as st

import jsonobj
import props

TOKENS = [b"{", b"}", b"[", b"]", b":", b",", b" ", b"\n", b'"a"', b'""', b'"\\u00e9"', b'"\\ud83c\\udfe0"',
          b'"\\ud83c"', b'"\\udfe0"', b'"\xc3\xa9"', b'"\xed\xa0\x80"', b'"\xc0\xaf"', b'"\\"', b"0", b"-0", b"01",
          b"1.5", b"1.", b"-1e400", b"0e400", b"1E+2", b"true", b"false", b"null", b"nul", b"NaN", b"\t"]

scalars = (st.none() | st.booleans() | st.integers(-2**80, 2**80) | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                      max_leaves=12)
objects = st.dictionaries(st.text(max_size=8), values, max_size=6).filter(lambda o: props._policy(o) is None)


@props.budget(2500)
@given(st.binary(max_size=200))
def test_any_bytes(data):
    props.check("jsonobj", data)


@props.budget(2500)
@given(st.randoms(use_true_random=False))
def test_mutated_objects(rng):
    props.check("jsonobj", props.fuzz_input(rng, "jsonobj"))


@props.budget(2500)
@given(st.booleans(), st.lists(st.sampled_from(TOKENS), max_size=40))
def test_token_soup(opened, tokens):
    props.check("jsonobj", (b"{" if opened else b"") + b"".join(tokens))


@props.budget(600)
@given(objects, st.booleans(), st.sampled_from([None, 0, 2, "\t"]))
def test_what_json_dumps_writes_reads_back(obj, ascii_only, indent):
    # ensure_ascii writes a character past U+FFFF as an escape pair: the rewritten path
    data = json.dumps(obj, ensure_ascii=ascii_only, indent=indent).encode()
    assert props.same(jsonobj.loads(data), obj)
    assert props.same(jsonobj.loads(memoryview(b"xx" + data)[2:]), obj)


@props.budget(1000)
@given(st.randoms(use_true_random=False), st.binary(max_size=20))
def test_object_end_finds_the_end(rng, tail):
    data = json.dumps(props.json_object(rng)).encode()
    for form in (bytes, bytearray, memoryview):
        assert jsonobj.object_end(form(data + tail)) == len(data)
        assert jsonobj.object_end(form(data[:-1])) == -1


@props.budget(300)
@given(st.integers(1, 20000), st.sampled_from([b"[", b'{"a":', b'[{"a":']), st.booleans())
def test_deep_input_is_a_value_error(n, opener, closed):
    # never a RecursionError (CPython) or MemoryError (MicroPython's json.loads)
    data = b'{"a":' + opener * n + ((b"]" if opener == b"[" else b"}") * n + b"}" if closed else b"")
    try:
        jsonobj.loads(data)
        assert closed and n + 1 <= props.DEPTH
    except ValueError as e:
        assert e.args == ("JSON too large",) if n + 1 > props.DEPTH else ("bad JSON",)
