# The firmware's sans-IO parsers driven by one input each, as bytes, asserting what must
# hold whatever the input: only the documented exceptions, buffers within their caps,
# results of the documented shape. Plain code that runs under CPython (the hypothesis
# tests and tests/fuzz/run.py) and on the MicroPython VM (vm_replay.py replays the
# corpus in tests/firmware/corpus there). Each driver returns what it got, for the
# CPython side to check further.
import json

import jsonobj
import settings
from espcloud import proto
from pairing import dns, esptouch, handlers, http
from pairing.server import Server

AP_IP = b"\x0a\x0a\x07\x01"
AP_REASONS = ("bad ssid", "bad password", "bad serverName", "bad port", "bad token", "bad json", "bad body")


def _chunks(data, size):
    for i in range(1, len(data), size):
        yield data[i:i + size]


def json_loads(data):
    """jsonobj.loads(data): a dict, or None for a ValueError with a fixed text."""
    ends = [jsonobj.object_end(form(data)) for form in (bytes, bytearray, memoryview)]
    end = ends[0]
    assert ends[1] == end and ends[2] == end and (end == -1 or 0 < end <= len(data)), ends
    try:
        value = jsonobj.loads(data)
    except ValueError as e:
        # CPython's own json.loads refuses ints over 4300 digits, with its text
        assert e.args in (("bad JSON",), ("JSON too large",)) or "4300" in str(e), e.args
        return None
    assert type(value) is dict
    assert jsonobj.loads(memoryview(data)) == value and jsonobj.loads(bytearray(data)) == value
    # a valid object ends where the brace counter says it does
    assert end == len(data.rstrip(b" \t\n\r")), end
    return value


def http_stream(data):
    """data[0] picks the read size (1..64); the rest arrives in reads of it, each
    followed by taking every complete request. Returns (requests, the refusal's status)."""
    p = http.Parser()
    requests = []
    for chunk in _chunks(data, data[0] % 64 + 1 if data else 1):
        p.feed(chunk)
        while True:
            try:
                req = p.next_request()
            except ValueError as e:
                status, reason = e.args
                assert http.reason(status) and status >= 400 and type(reason) is str, e.args
                return requests, status
            if req is None:
                break
            method, path, query, host, body, keep_alive, html = req
            assert type(method) is str and type(path) is str and type(query) is str and type(host) is str
            assert type(body) is bytes and len(body) <= http.MAX_BODY and type(keep_alive) is type(html) is bool
            requests.append(req)
        # what a request holds meanwhile (its request line, Host, the line arriving or
        # its body) is within the cap, however the head was stuffed
        assert p.held() <= http.MAX_HELD, p.held()
    return requests, None


def pairing_server(data):
    """The pairing server's work without sockets: http_stream's requests answered by
    handlers.handle in AP mode, every body read out. Returns the statuses."""
    ctx = Server(settings.defaults(), "10.10.7.1", [("home", -50), ("caf\xe9 \U0001f3e0", -70)])
    statuses = []
    for req in http_stream(data)[0]:
        status, body, content_type, headers = handlers.handle(req, ctx)
        assert http.reason(status), status
        assert type(content_type) is str and type(headers) is str
        if type(body) is not bytes:  # a page: (its function, their arguments)
            body = b"".join(body[0](*body[1]))
        statuses.append(status)
    return statuses


def post_ap(data):
    """handlers.parse_ap(body) as POST /ap calls it: the pairing, or None for a
    ValueError with one of the reasons the portal explains."""
    try:
        got = handlers.parse_ap(data.strip())
    except ValueError as e:
        assert e.args[0] in AP_REASONS, e.args
        return None
    ssid, password = got["ssid"], got["password"]
    assert type(ssid) is str and 1 <= len(ssid.encode()) <= 32
    assert type(password) is str and handlers.password_ok(password)
    port = got.get("port", 1)
    assert type(port) is int and 1 <= port <= 65535
    assert type(got.get("server", "")) is str and type(got.get("token", "")) is str
    return got


def dns_query(data):
    """dns.answer(datagram, AP_IP): None, or a reply to it no longer than it plus a record."""
    reply = dns.answer(data, AP_IP)
    if reply is None:
        assert len(data) < 12 or data[2] & 0x80
        return None
    assert type(reply) is bytes and len(reply) >= 12 and len(reply) <= max(len(data), 12) + 16
    assert reply[:2] == data[:2] and reply[2] & 0x80  # its id, a reply
    if reply[7]:  # an answer: the AP's address, last
        assert reply[3] == 0 and reply[-4:] == AP_IP
    return reply


def esptouch_lengths(data):
    """Decoder.feed() every datagram length, read as big-endian 16-bit numbers from data.
    Returns the Decoder."""
    d = esptouch.Decoder()
    for i in range(0, len(data) - 1, 2):
        if d.feed(data[i] << 8 | data[i + 1]):
            break
    # its four buffers never grow
    assert (len(d._vals), len(d._known), len(d._halves), len(d._half_known)) == (128, 16, 256, 32)
    if d.done:
        assert 1 <= len(d.ssid) <= 32 and d.total_len == 9 + len(d.password) + len(d.ssid)
        assert d.bssid is None or len(d.bssid) == 6
        assert len(d.phone_ip.split(".")) == 4
    return d


def cloud_stream(data):
    """data[0] picks the read size (1..256); the rest goes into Frames.space() in reads
    of it, each followed by next() until None, as the link does. Returns what next()
    gave and the Frames."""
    f = proto.Frames()
    out = []
    dropped = 0
    for chunk in _chunks(data, data[0] + 1 if data else 1):
        while chunk:
            space = f.space()
            k = min(len(space), len(chunk))
            space[:k] = chunk[:k]
            f.received(k)
            chunk = chunk[k:]
            while True:
                got = f.next()
                if got is None:
                    break
                # a frame, or the reply to one dropped with its nonce readable
                assert type(got) is dict or type(got) is bytes and type(json.loads(got)) is dict, got
                out.append(got)
            assert len(f.buf) == proto.MAX_FRAME and 0 <= f.n <= len(f.buf)
            assert f.dropped >= dropped
            dropped = f.dropped
    return out, f


DRIVERS = {
    "jsonobj": json_loads,
    "http": http_stream,
    "pairing_server": pairing_server,
    "post_ap": post_ap,
    "dns": dns_query,
    "esptouch": esptouch_lengths,
    "proto": cloud_stream,
}
