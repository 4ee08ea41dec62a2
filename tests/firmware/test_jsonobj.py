# jsonobj.loads: exactly one complete JSON object, on CPython and on the VM alike.
import jsonobj
from check import raises


def test_complete_objects():
    assert jsonobj.loads(b'{"a": 1}') == {"a": 1}
    assert jsonobj.loads(b' \n{"a": {"b": [1, {"c": "}"}]}}\r\n') == {"a": {"b": [1, {"c": "}"}]}}
    assert jsonobj.loads(b'{"q": "say \\"}\\" ok"}') == {"q": 'say "}" ok'}


def test_truncated_objects_are_refused():
    # MicroPython's json.loads returns {} or a partial dict for every one of these
    for cut in (b'{"a":', b'{"a": 1', b'{"a": {}', b'{"a": "}', b'{"a": [1, 2]', b'{'):
        raises(ValueError, jsonobj.loads, cut)


def test_not_one_object():
    for data in (b"", b"[1]", b'"x"', b'{"a": 1}{"b": 2}', b'{"a": 1} x', b'{"a": 1}}'):
        raises(ValueError, jsonobj.loads, data)


def test_bad_utf8_is_a_value_error():
    raises(ValueError, jsonobj.loads, b'{"a": "\xff"}')
