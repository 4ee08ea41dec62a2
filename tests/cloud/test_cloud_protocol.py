import pytest

from esplink.cloud import protocol


def test_encode_is_python_json_dumps_style_sorted_with_newline():
    assert protocol.encode({"status": 200, "nonce": 5, "b": [1, 2], "a": {"y": 1, "x": "é"}}) == (
        b'{"a": {"x": "\\u00e9", "y": 1}, "b": [1, 2], "nonce": 5, "status": 200}\n')


def test_framer_cuts_lines_across_and_within_chunks():
    f = protocol.Framer(limit=64)
    assert f.feed(b'{"a": 1}\n{"b"') == [(b'{"a": 1}', False)]
    assert f.feed(b': 2}') == []
    assert f.feed(b'\n{"c": 3}\n{"d": 4}\n') == [(b'{"b": 2}', False), (b'{"c": 3}', False),
                                                  (b'{"d": 4}', False)]


def test_framer_reports_an_oversize_line_once_and_drops_its_tail():
    f = protocol.Framer(limit=16)
    out = f.feed(b"x" * 20)
    assert out == [(b"x" * 16, True)]
    assert f.feed(b"y" * 100) == []
    assert f.feed(b'yy\n{"ok": 1}\n') == [(b'{"ok": 1}', False)]
    # a long line that arrives whole, newline included
    assert f.feed(b"z" * 40 + b'\n{"ok": 2}\n') == [(b"z" * 16, True), (b'{"ok": 2}', False)]


def test_framer_limit_counts_the_newline():
    f = protocol.Framer(limit=8)
    assert f.feed(b"1234567\n") == [(b"1234567", False)]
    assert f.feed(b"12345678\n") == [(b"12345678", True)]


@pytest.mark.parametrize("line,message", [
    (b"garbage", "bad json"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 3000 + b"]" * 3000, "bad json"),
    (b"[1, 2]", "not a json object"),
    (b'"text"', "not a json object"),
])
def test_parse_refuses_what_is_not_a_json_object(line, message):
    with pytest.raises(ValueError, match=message):
        protocol.parse(line)


def test_guess_nonce_and_authorization():
    assert protocol.guess_nonce(b'{"nonce": 77, "path": oops') == 77
    assert protocol.guess_nonce(b"nothing here") is None
    key = "1cc05be71fb3f81bcba98acbd8fbff3a079461e5"
    assert protocol.authorization(f"token {key}") == key
    for bad in (None, "", key, f"Bearer {key}", "token ", "token a b", 42):
        assert protocol.authorization(bad) is None


def test_paths():
    assert protocol.normalize("/v1/device/identify") == "/v1/device/identify/"
    assert protocol.datastream("/v1/datastreams/plug-status/datapoint/") == "plug-status"
    assert protocol.datastream("/v1/datastreams/a/b/datapoint/") is None
