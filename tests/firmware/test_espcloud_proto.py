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


# Frames that cannot be taken are answered when their nonce can be read: the caller
# hears at once instead of waiting for the cloud's timeout.

def answer(status, nonce, message):
    return ('{"status": %d, "nonce": %d, "deliver_to_device": true, "message": "%s"}\n'
            % (status, nonce, message)).encode()


def delivery(get, nonce=4242):
    # the cloud's shape: json.dumps with sorted keys, so "nonce" comes after "get"
    return (b'{"deliver_to_device": true, "get": ' + get + b', "meta": {}, "method": "GET", "nonce": '
            + str(nonce).encode() + b', "path": "/v1/device/rpc/"}\n')


def test_deep_nesting_is_refused_with_a_400_and_its_nonce():
    # 550 nested lists in 1.2 KB: a MemoryError in json.loads at 38 KB (the board reset)
    deep = delivery(b'{"action": "LED_ON", "x": ' + b"[" * 550 + b"]" * 550 + b"}")
    assert 1100 < len(deep) < 1300
    out, f = frames_of(deep, b'{"after": 1}\n')
    assert out == [answer(400, 4242, "bad frame"), {"after": 1}] and f.dropped == 1


def test_nesting_that_would_recurse_past_cpythons_limit_is_refused():
    # 1010 levels fit in 2 KB; CPython's json.loads raises RecursionError on them
    deep = b'{"nonce": 9, "x": ' + b"[" * 1010 + b"]" * 1010 + b"}\n"
    assert len(deep) < proto.MAX_FRAME
    out, f = frames_of(deep)
    assert out == [answer(400, 9, "bad frame")] and f.dropped == 1


def test_an_oversize_frame_with_its_nonce_at_the_start_gets_a_413():
    big = b'{"nonce": 31337, "deliver_to_device": true, "path": "/v1/device/rpc/", "get": {"action": "LED_ON", "pad": "' \
        + b"p" * 3000 + b'"}}\n'
    want = b'{"status": 413, "nonce": 31337, "deliver_to_device": true, "message": "frame over 2 KB"}\n'
    out, f = frames_of(big[:1000], big[1000:2500], big[2500:], b'{"after": 1}\n')
    assert out == [want, {"after": 1}] and f.dropped == 1
    out, f = frames_of(big + b'{"after": 2}\n')  # all in one read
    assert out == [want, {"after": 2}] and f.dropped == 1


def test_the_nonce_is_the_first_nonce_key_with_digits():
    f = proto.Frames()
    feed(f, b'{"x": "nonce", "y": "\\"nonce\\": 1", "get": {"nonce": "2"}, "nonce" :  77, "z": nope}\n')
    assert f.next() == answer(400, 77, "bad frame")
    feed(f, b'{"nonce": 2147483647, "z": nope}\n')
    assert f.next() == answer(400, 2147483647, "bad frame")
    # not a nonce: a string, a negative number, more than 10 digits
    feed(f, b'{"nonce": "5", "z": nope}\n{"nonce": -5, "z": nope}\n{"nonce": 12345678901, "z": nope}\n')
    assert f.next() is None and f.dropped == 5


def test_invalid_utf8_in_the_action_gets_a_400_with_its_nonce():
    for bad in (b"LED\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"LED_O\xe2\x82"):
        out, f = frames_of(delivery(b'{"action": "' + bad + b'"}', nonce=77), delivery(b'{"action": "LED_ON"}', 78))
        assert out[0] == answer(400, 77, "bad frame"), bad
        assert out[1]["nonce"] == 78 and f.dropped == 1


def test_a_line_that_ends_inside_an_object_is_answered_too():
    out, f = frames_of(b'{"nonce": 5, "get": {"action": \n', b'{"ok": 1}\n')
    assert out == [answer(400, 5, "bad frame"), {"ok": 1}] and f.dropped == 1


def test_a_memory_error_while_parsing_drops_only_that_frame():
    import jsonobj

    real = jsonobj.loads
    calls = []

    def exhausted(data):
        calls.append(1)
        if len(calls) == 1:
            raise MemoryError("memory allocation failed, allocating 1024 bytes")
        return real(data)

    jsonobj.loads = exhausted
    try:
        out, f = frames_of(delivery(b'{"action": "LED_ON"}', nonce=66) + delivery(b'{"action": "LED_OFF"}', 67))
    finally:
        jsonobj.loads = real
    assert out[0] == answer(503, 66, "out of memory")  # the caller may try again
    assert out[1]["get"] == {"action": "LED_OFF"} and len(out) == 2 and f.dropped == 1


def test_clear_forgets_an_answer_not_handed_out():
    f = proto.Frames()
    feed(f, b'{"nonce": 3, "pad": "' + b"p" * proto.MAX_FRAME)
    f.space()
    f.clear()
    assert f.next() is None
