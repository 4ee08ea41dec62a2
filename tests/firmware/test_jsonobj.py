# jsonobj.loads: exactly one RFC 8259 JSON object, the same value on CPython and on the VM.
# MicroPython's own json.loads accepts most of the refused inputs below (see jsonobj.py).
import jsonobj
from check import raises


def refused(data, why="bad JSON"):
    e = raises(ValueError, jsonobj.loads, data)
    # a short fixed text, never the input
    assert e.args == (why,), "%r: %r" % (data, e.args)


def accepted(data, value):
    for form in (data, bytearray(data), memoryview(data)):
        got = jsonobj.loads(form)
        assert got == value, "%r: %r" % (data, got)
    return got


def test_complete_objects():
    assert jsonobj.loads(b'{"a": 1}') == {"a": 1}
    assert jsonobj.loads(b' \n{"a": {"b": [1, {"c": "}"}]}}\r\n') == {"a": {"b": [1, {"c": "}"}]}}
    assert jsonobj.loads(b'{"q": "say \\"}\\" ok"}') == {"q": 'say "}" ok'}
    accepted(b'\t{ "a" : [ ] , "b" : { } , "c" : [ 1 , [ ] ] }\r\n', {"a": [], "b": {}, "c": [1, []]})
    accepted(b'{"t": true, "f": false, "n": null, "": ""}', {"t": True, "f": False, "n": None, "": ""})


def test_a_slice_of_a_larger_buffer():
    # how the cloud's frame reader passes a frame: a memoryview over its buffer
    buf = bytearray(b'xx{"a": "\\ud83c\\udfe0", "b": 0e9}yy')
    assert jsonobj.loads(memoryview(buf)[2:-2]) == {"a": "\U0001f3e0", "b": 0.0}
    assert buf == bytearray(b'xx{"a": "\\ud83c\\udfe0", "b": 0e9}yy')  # read, never written


def test_truncated_objects_are_refused():
    # MicroPython's json.loads returns {} or a partial dict for every one of these
    for cut in (b'{"a":', b'{"a": 1', b'{"a": {}', b'{"a": "}', b'{"a": [1, 2]', b"{", b"", b" \n",
                b'{"a": "\\', b'{"a": "\\u00', b'{"a": "\\ud83c', b'{"a": "\\ud83c\\udf', b'{"a": "\xc3'):
        refused(cut)
    doc = b'{"a": [1, -2.5e+3, "x\\u00e9\xc3\xa9\\ud83c\\udfe0", true, false, null, {"b": {}}], "c": 0e5}'
    for i in range(len(doc)):
        refused(doc[:i])
    assert jsonobj.loads(doc)["c"] == 0.0


def test_not_one_object():
    for data in (b"[1]", b'"x"', b"1", b"true", b"null", b'{"a": 1}{"b": 2}', b'{"a": 1} x',
                 b'{"a": 1}}', b'{"a": 1}]', b'{"a": 1},', b"{}[]"):
        refused(data)


def test_what_micropython_lets_through():
    # measured on MicroPython 1.25: {1e5} -> {}, {"a" 1} and [1 2] parse, ...
    for data in (b"{1e5}", b'{"a" 1}', b'{"a": [1 2]}', b'{"a": {"a": }}', b'{"a": 1,}', b"{,}",
                 b'{"a": 1 "b": 2}', b'{"a":: 1}', b'{"a": [1,]}', b'{"a": [1,,2]}', b'{"a": [,1]}',
                 b'{"a": }', b"{: 1}", b"{1: 2}", b"{true: 1}", b"{null: 1}", b'{"a", 1}',
                 b'{"a": [1: 2]}', b'{"a": {"b"}}', b'{"a": [}', b'{"a": {]}', b'{"a": ]}',
                 b'{"a": 1]', b'{"a": [1}}', b"{[]: 1}", b"{{}: 1}"):
        refused(data)


def test_whitespace_is_four_bytes():
    accepted(b' \t\n\r{ \t\n\r"a" \t\n\r: \t\n\r1 \t\n\r} \t\n\r', {"a": 1})
    for ws in (b"\x0b", b"\x0c", b"\xc2\xa0", b"\xef\xbb\xbf", b"\x00", b"\x1c"):
        refused(ws + b'{"a": 1}')
        refused(b'{"a": 1}' + ws)
        refused(b'{"a":' + ws + b"1}")


def test_numbers_per_the_grammar():
    for text, value in ((b"0", 0), (b"-0", 0), (b"7", 7), (b"-12", -12), (b"10", 10), (b"1.5", 1.5),
                        (b"-0.25", -0.25), (b"1e5", 1e5), (b"1E+5", 1e5), (b"25e-1", 2.5), (b"1.0e05", 1e5),
                        (b"0e0", 0.0), (b"0.0", 0.0), (b"123456789012345678901234567890", 123456789012345678901234567890),
                        (b"-9007199254740993", -9007199254740993)):
        accepted(b'{"n": ' + text + b"}", {"n": value})
        accepted(b'{"n": [' + text + b"]}", {"n": [value]})
    for text in (b"01", b"-01", b"00", b"+1", b".5", b"1.", b"1.e5", b"1e", b"1e+", b"1E-", b"-", b"--1",
                 b"-.5", b"0x10", b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1_0", b"1.5.5",
                 b"1ee5", b"1e5.0", b"1e5e5", b"0-1", b"1-", b"- 1", b"1 2", b"\xd9\xa1"):
        refused(b'{"n": ' + text + b"}")


def test_big_and_small_floats_are_as_cpython_has_them():
    assert jsonobj.loads(b'{"n": 1E400}')["n"] == float("inf")
    assert jsonobj.loads(b'{"n": -1e400}')["n"] == -float("inf")
    assert jsonobj.loads(b'{"n": 1e-400}')["n"] == 0.0
    # MicroPython's json.loads makes 0 * 10**400: nan
    for text, sign in ((b"0e400", ""), (b"-0E+999", "-"), (b"0.000e309", ""), (b"-0.0e99999999999999999999", "-")):
        n = jsonobj.loads(b'{"n": ' + text + b"}")["n"]
        assert n == 0.0 and str(n) == sign + "0.0", (text, n)


def test_literals_are_exact():
    for text in (b"True", b"tru", b"nul", b"nulll", b"truex", b"falsey", b"t", b"None", b'"true"x', b"TRUE"):
        refused(b'{"v": ' + text + b"}")


def test_escapes():
    accepted(b'{"e": "\\" \\\\ \\/ \\b \\f \\n \\r \\t"}', {"e": '" \\ / \x08 \x0c \n \r \t'})
    accepted(b'{"e": "\\u0041\\u00e9\\u20AC\\uffff\\u0000"}', {"e": "A\xe9\u20ac\uffff\x00"})
    for esc in (b"\\x41", b"\\a", b"\\'", b"\\U0041", b"\\u12", b"\\u12g4", b"\\u-123", b"\\u 123",
                b"\\u+123", b"\\0", b"\\ ", b"\\\xc3\xa9", b"\\"):
        refused(b'{"e": "' + esc + b'"}')


def test_no_raw_control_characters_in_strings():
    for c in range(0x20):
        refused(b'{"s": "a' + bytes((c,)) + b'"}')
        refused(b'{"a' + bytes((c,)) + b'": 1}')
    accepted(b'{"s": "\x7f"}', {"s": "\x7f"})  # DEL is no control character to JSON


def test_surrogate_pairs_make_one_character():
    # MicroPython's json.loads makes CESU-8 of these: 6 bytes, not UTF-8
    cafe = b"Caf\xc3\xa9\xf0\x9f\x8f\xa0"
    for body in (b'"Caf\\u00e9\\ud83c\\udfe0"', b'"Caf\\u00E9\\uD83C\\uDFE0"', b'"' + cafe + b'"'):
        v = jsonobj.loads(b'{"ssid": ' + body + b"}")["ssid"]
        assert v.encode() == cafe and len(v) == 5, v
    # a 32-byte SSID of 8 emoji, the most a network name holds
    v = jsonobj.loads(b'{"ssid": "' + b"\\ud83d\\ude00" * 8 + b'"}')["ssid"]
    assert v.encode() == b"\xf0\x9f\x98\x80" * 8, v
    # in a key, next to other escapes, the highest code point, several in a document
    accepted(b'{"\\ud83c\\udfe0": ["\\udbff\\udfff\\n", "\\ud800\\udc00\\\\ud800"]}',
             {"\U0001f3e0": ["\U0010ffff\n", "\U00010000\\ud800"]})


def test_lone_surrogate_escapes_are_refused():
    # no UTF-8 for them: the same refusal on every port (jsonobj.py's policy)
    for s in (b"\\ud800", b"\\udc00", b"\\udfff", b"\\ud800\\u0041", b"\\ud800x", b"\\udfff\\ud800",
              b"\\ud800\\ud800", b"\\ud83c\\\\udfe0", b"\\ud83c\\n", b"a\\udbff", b"\\ud83c\\udfe"):
        refused(b'{"s": "' + s + b'"}')
        refused(b'{"' + s + b'": 1}')


def test_utf8_is_checked():
    good = (b"\xc2\x80", b"\xdf\xbf", b"\xe0\xa0\x80", b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xef\xbf\xbf",
            b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf", b"\xe2\x82\xac")
    for u in good:
        assert jsonobj.loads(b'{"s": "' + u + b'"}')["s"].encode() == u
    bad = (b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\x9f\xbf", b"\xf0\x80\x80\x80", b"\xf0\x8f\xbf\xbf",
           b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\xbc\xed\xbf\xa0", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
           b"\xf8\x88\x80\x80\x80", b"\xfe", b"\xff", b"\x80", b"\xbf", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x8f",
           b"\xc3\x41", b"\xe2\x41\xac", b"\xe2\x82\x41", b"\xf0\x9f\x41\xa0", b"\xc3\xa9\xa9")
    for u in bad:
        refused(b'{"s": "' + u + b'"}')
        refused(b'{"' + u + b'": 1}')
        refused(b'{"s": 1' + u + b"}")


def test_nesting_is_bounded():
    deep_obj, deep_list = {}, []
    for _ in range(7):
        deep_obj, deep_list = {"a": deep_obj}, [deep_list]
    accepted(b'{"a":' * 7 + b"{}" + b"}" * 7, deep_obj)  # 8 objects
    accepted(b'{"a":' + b"[" * 7 + b"]" * 7 + b"}", {"a": deep_list[0]})  # 1 object, 7 lists
    refused(b'{"a":' * 8 + b"{}" + b"}" * 8, "JSON too large")
    refused(b'{"a":' + b"[" * 8 + b"]" * 8 + b"}", "JSON too large")
    # 550 nested lists in 1.2 KB: a MemoryError in MicroPython's json.loads on the chip
    refused(b'{"a":' + b"[" * 550 + b"]" * 550 + b"}", "JSON too large")
    refused(b'{"a":' + b"[" * 5000, "JSON too large")  # cut short too: the bound is met first


def test_values_are_bounded():
    # the object, the list and 254 numbers: 256 values
    accepted(b'{"a": [' + b"0," * 253 + b"0]}", {"a": [0] * 254})
    refused(b'{"a": [' + b"0," * 254 + b"0]}", "JSON too large")
    keys = ", ".join('"k%d": {}' % i for i in range(254)).encode()
    assert len(jsonobj.loads(b'{"a": {' + keys + b"}}")["a"]) == 254  # keys are not counted
    refused(b'{"a": {' + keys + b', "x": 1}}', "JSON too large")


def test_duplicate_keys_last_wins():
    accepted(b'{"a": 1, "b": 2, "a": 3}', {"a": 3, "b": 2})
    # the text is checked, whatever a later key replaces
    refused(b'{"a": "\\ud800", "a": 1}')
    refused(b'{"a": [' + b"0," * 254 + b'0], "a": 1}', "JSON too large")


def test_object_end():
    for form in (bytes, bytearray, memoryview):
        assert jsonobj.object_end(form(b'{"a": "}", "b": [{}]} tail')) == 21
        assert jsonobj.object_end(form(b'{"a": "\\"}"')) == -1
        assert jsonobj.object_end(form(b'{"a": {}')) == -1
        assert jsonobj.object_end(form(b"")) == -1
    assert jsonobj.object_end(memoryview(b'{"a": 1}\n{"b": 2}')[9:]) == 8
