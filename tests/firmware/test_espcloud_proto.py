# The cloud's wire format: the bytes the device sends and how it cuts what it receives.
from espcloud import proto

KEY = "1cc05be71fb3f81bcba98acbd8fbff3a079461e5"
AUTH = b'"meta": {"Authorization": "token 1cc05be71fb3f81bcba98acbd8fbff3a079461e5"}}\n'


def test_activate_bytes():
    got = proto.activate(66, KEY, "t" * 40, "18:fe:34:a1:b2:c3", "v0.1.0t23701(a)")
    assert got == (b'{"nonce": 66, "path": "/v1/device/activate/", "method": "POST", "body": '
                   b'{"encrypt_method": "PLAIN", "token": "' + b"t" * 40 + b'", "bssid": "18:fe:34:a1:b2:c3", '
                   b'"rom_version": "v0.1.0t23701(a)"}, ' + AUTH)


def test_identify_ping_datapoint_bytes():
    assert proto.identify(67, KEY) == b'{"nonce": 67, "path": "/v1/device/identify/", "method": "GET", ' + AUTH
    assert proto.ping(68, KEY) == b'{"nonce": 68, "path": "/v1/ping/", "method": "POST", ' + AUTH
    assert proto.datapoint(69, KEY, "plug-status", {"x": 1}) == (
        b'{"nonce": 69, "path": "/v1/datastreams/plug-status/datapoint/", "method": "POST", '
        b'"body": {"datapoint": {"x": 1}}, ' + AUTH)


def test_strings_are_escaped():
    got = proto.activate(1, KEY, 'to"k\\en', "b", "r")
    assert b'"token": "to\\"k\\\\en"' in got
    assert got.count(b"\n") == 1 and got.endswith(b"\n")


def test_reply_bytes():
    assert proto.reply(912639262) == b'{"status": 200, "nonce": 912639262, "deliver_to_device": true}\n'
    assert proto.reply(101, datapoint={"x": 1}) == (
        b'{"status": 200, "nonce": 101, "deliver_to_device": true, "datapoint": {"x": 1}}\n')
    assert proto.reply(7, 400, message="unknown action") == (
        b'{"status": 400, "nonce": 7, "deliver_to_device": true, "message": "unknown action"}\n')


def test_nonces_are_fresh_and_below_2_31():
    seen = set()
    for _ in range(200):
        n = proto.nonce()
        assert 0 <= n < 2 ** 31
        seen.add(n)
    assert len(seen) > 190


def feed(f, data):
    # as the link does: read into space(), then received()
    data = memoryview(data)
    while data:
        space = f.space()
        count = min(len(space), len(data))
        space[:count] = data[:count]
        f.received(count)
        data = data[count:]


def frames_of(*chunks):
    f = proto.Frames()
    out = []
    for chunk in chunks:
        feed(f, chunk)
        msg = f.next()
        while msg is not None:
            out.append(msg)
            msg = f.next()
    return out, f


def test_newline_terminated_frames():
    out, f = frames_of(b'{"a": 1}\n')
    assert out == [{"a": 1}] and f.dropped == 0 and f.n == 0


def test_a_frame_split_across_reads():
    data = b'{"nonce": 5, "status": 200, "message": "ping success"}\n'
    out, f = frames_of(*[data[i:i + 1] for i in range(len(data))])
    assert out == [{"nonce": 5, "status": 200, "message": "ping success"}] and f.dropped == 0


def test_several_frames_in_one_read():
    out, f = frames_of(b'{"a": 1}\n{"b": 2}\r\n\n{"c": 3}\n{"d"')
    assert out == [{"a": 1}, {"b": 2}, {"c": 3}] and f.dropped == 0
    feed(f, b': 4}\n')
    assert f.next() == {"d": 4}


def test_a_complete_object_without_newline():
    out, f = frames_of(b'{"a": {"b": "}{"}}')
    assert out == [{"a": {"b": "}{"}}]
    out, f = frames_of(b'{"a": ', b'{"b": 1}', b'}')  # split, no newline anywhere
    assert out == [{"a": {"b": 1}}]
    out, f = frames_of(b'{"a": 1}{"b": 2}')  # two at once, no newlines
    assert out == [{"a": 1}, {"b": 2}] and f.dropped == 0


def test_garbage_is_dropped_and_counted():
    out, f = frames_of(b"GET / HTTP/1.1\r\n", b'{"a": 1}\n', b"\xff\xfe{{{\n", b'{"b": 2}\n')
    # three runs of junk: a line with no object, bytes before a "{", an object its line cut short
    assert out == [{"a": 1}, {"b": 2}] and f.dropped == 3


def test_garbage_without_newline_before_an_object():
    out, f = frames_of(b"noise", b'{"a": 1}')
    assert out == [{"a": 1}] and f.dropped == 1


def test_bad_json_and_bad_utf8_lines():
    out, f = frames_of(b'{"a": nope}\n', b'{"a": "\xff"}\n', b'{"a": \n', b'[1, 2]\n', b'{"ok": true}\n')
    assert out == [{"ok": True}] and f.dropped == 4


def test_oversize_frames_are_dropped_and_reading_goes_on():
    big = b'{"x": "' + b"y" * (proto.MAX_FRAME + 100) + b'"}\n'
    out, f = frames_of(big[:1000], big[1000:2500], big[2500:], b'{"after": 1}\n')
    assert out == [{"after": 1}] and f.dropped == 1
    out, f = frames_of(big + b'{"after": 2}\n')  # all in one read
    assert out == [{"after": 2}] and f.dropped == 1


def test_the_largest_real_frame_fits():
    # the activate reply in the seed is 1609 bytes
    fields = ", ".join('"field%d": "%s"' % (i, "v" * 40) for i in range(34))
    frame = ('{"device": {%s}, "nonce": 66, "status": 200}\n' % fields).encode()
    assert 1800 < len(frame) < proto.MAX_FRAME
    out, f = frames_of(frame[:700], frame[700:])
    assert len(out) == 1 and out[0]["nonce"] == 66 and f.dropped == 0


def test_clear_forgets_a_partial_frame():
    f = proto.Frames()
    feed(f, b'{"half": ')
    f.clear()
    feed(f, b'{"new": 1}\n')
    assert f.next() == {"new": 1}
