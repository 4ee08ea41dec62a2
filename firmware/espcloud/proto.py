# The ESP cloud's wire format, sans-IO: builders for what the device sends, and a
# reader that cuts what the cloud sends into JSON objects.
# Every message is one JSON object and a newline ("交互发送json报文结尾一定要换行").
import json
import os

from micropython import const

import jsonobj

MAX_FRAME = const(2048)  # the seed's activate reply, the largest frame seen, is 1.6 KB


def nonce():
    return int.from_bytes(os.urandom(4), "big") & 0x7FFFFFFF  # 0 <= n < 2**31


# Written out by hand so the bytes are the same on every port, in the spec's order.
def request(n, method, path, key, body=None):
    body = "" if body is None else '"body": %s, ' % body
    return ('{"nonce": %d, "path": "%s", "method": "%s", %s"meta": {"Authorization": %s}}\n'
            % (n, path, method, body, json.dumps("token " + key))).encode()


def activate(n, key, token, bssid, rom_version):
    body = '{"encrypt_method": "PLAIN", "token": %s, "bssid": %s, "rom_version": %s}' % (
        json.dumps(token), json.dumps(bssid), json.dumps(rom_version))
    return request(n, "POST", "/v1/device/activate/", key, body)


def identify(n, key):
    return request(n, "GET", "/v1/device/identify/", key)


def ping(n, key):
    return request(n, "POST", "/v1/ping/", key)


def datapoint(n, key, stream, point):
    body = '{"datapoint": %s}' % json.dumps(point)
    return request(n, "POST", "/v1/datastreams/%s/datapoint/" % stream, key, body)


def reply(n, status=200, datapoint=None, message=None):
    """The device's answer to a delivery: no path, the delivery's nonce."""
    extra = ""
    if datapoint is not None:
        extra += ', "datapoint": ' + json.dumps(datapoint)
    if message is not None:
        extra += ', "message": ' + json.dumps(message)
    return ('{"status": %d, "nonce": %d, "deliver_to_device": true%s}\n' % (status, n, extra)).encode()


class Frames:
    """Cuts the byte stream into JSON objects. A frame ends at a newline or, for
    servers that leave the newline out, where a complete object ends. Garbage and
    frames over MAX_FRAME are dropped and counted; nothing here raises.

    Bytes go straight into a fixed buffer: `space()` is where the next read lands,
    `received(n)` says how many did."""

    def __init__(self, size=MAX_FRAME):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0  # bytes held
        self.dropped = 0
        self.skipping = False  # inside an oversize frame: drop up to its newline

    def clear(self):
        self.n = 0
        self.skipping = False

    def space(self):
        if self.n == len(self.buf):  # full and no frame in it: give up on this one
            self.dropped += 1
            self.n = 0
            self.skipping = True
        return self.mv[self.n:]

    def received(self, count):
        start = self.n
        self.n += count
        if self.skipping:
            i = self.buf.find(b"\n", start, self.n)
            if i < 0:
                self.n = start
                return
            self.skipping = False
            self._consume(start, i + 1)

    def next(self):
        """The next complete object (a dict), or None when more bytes are needed.
        An object must close before its line ends; anything else on a line is junk."""
        while self.n:
            n = self.n
            nl = self.buf.find(b"\n", 0, n)
            line_end = n if nl < 0 else nl
            start = self.buf.find(b"{", 0, line_end)
            if start != 0:  # junk (or blank) before any object
                cut = line_end if start < 0 else start
                if bytes(self.mv[:cut]).strip():
                    self.dropped += 1
                if start < 0 and nl >= 0:
                    cut += 1
                self._consume(0, cut)
                if start < 0 and nl < 0:
                    return None
                continue
            end = jsonobj.object_end(self.mv[:line_end])
            if end < 0:
                if nl < 0:
                    return None  # an object still arriving
                self.dropped += 1  # the line ended inside the object
                self._consume(0, nl + 1)
                continue
            try:
                frame = _parse(self.mv[:end])
            except ValueError:
                frame = None
                self.dropped += 1
            self._consume(0, end)
            if frame is not None:
                return frame
        return None

    def _consume(self, start, end):
        # drop buf[start:end], keep what follows
        rest = self.n - end
        self.mv[start:start + rest] = self.mv[end:self.n]
        self.n = start + rest


def _parse(data):
    try:
        return json.loads(data)  # MicroPython reads the buffer in place: no copy
    except TypeError:  # CPython's json wants bytes
        return json.loads(bytes(data))
