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
    frames that cannot be taken (over MAX_FRAME, bad JSON or UTF-8, nested too deep
    or too many values for jsonobj, more than the heap holds) are dropped and counted;
    nothing here raises. A dropped frame whose nonce can be read is still answered
    (413, 400 or 503), so its caller is not left waiting for a reply that never comes.

    Bytes go straight into a fixed buffer: `space()` is where the next read lands,
    `received(n)` says how many did."""

    def __init__(self, size=MAX_FRAME):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.n = 0  # bytes held
        self.dropped = 0
        self.skipping = False  # inside an oversize frame: drop up to its newline
        self.answer = None  # the reply to an oversize frame, for next() to hand out

    def clear(self):
        self.n = 0
        self.skipping = False
        self.answer = None

    def space(self):
        if self.n == len(self.buf):  # full and no frame in it: give up on this one
            self.answer = self._drop(self.n, 413, "frame over 2 KB")  # its first 2 KB are still here
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
        """The next complete object (a dict); or the reply to send (bytes) for a frame
        dropped with its nonce readable; or None when more bytes are needed.
        An object must close before its line ends; anything else on a line is junk."""
        answer = self.answer
        if answer is not None:
            self.answer = None
            return answer
        while self.n:
            n = self.n
            nl = self.buf.find(b"\n", 0, n)
            line_end = n if nl < 0 else nl
            start = self.buf.find(b"{", 0, line_end)
            if start != 0:  # junk (or blank) before any object
                cut = line_end if start < 0 else start
                for c in self.mv[:cut]:  # not bytes(...).strip(): no 2 KB copy on a full heap
                    if c not in b" \t\r":
                        self.dropped += 1
                        break
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
                frame = self._drop(nl, 400, "bad frame")  # the line ended inside the object
                self._consume(0, nl + 1)
            else:
                try:
                    frame = jsonobj.loads(self.mv[:end])  # in place: no copy
                except MemoryError:
                    # more objects than the heap holds now (jsonobj's bounds keep hostile
                    # nesting from getting here): a later try may fit. The half-built objects
                    # are garbage, collected by the allocator when it next needs the room.
                    frame = self._drop(end, 503, "out of memory")
                except (ValueError, RuntimeError):
                    # bad JSON or UTF-8, past jsonobj's depth or element bounds; RuntimeError:
                    # CPython's RecursionError, should deep nesting ever reach its json
                    frame = self._drop(end, 400, "bad frame")
                self._consume(0, end)
            if frame is not None:
                return frame
        return None

    def _drop(self, end, status, message):
        """Count a frame given up; the reply to it if buf[:end] holds its nonce."""
        self.dropped += 1
        n = _nonce(self.buf, end)
        return None if n is None else reply(n, status, message=message)

    def _consume(self, start, end):
        # drop buf[start:end], keep what follows
        rest = self.n - end
        self.mv[start:start + rest] = self.mv[end:self.n]
        self.n = start + rest


def _nonce(buf, end):
    """The number after the first "nonce" key in buf[:end] that has one (10 digits at
    most, as a nonce below 2**31), or None. The cloud sorts its keys, which puts "nonce"
    after "get": all that is held is searched, not only the first bytes."""
    i = buf.find(b'"nonce"', 0, end)
    while i >= 0:
        i += 7
        while i < end and buf[i] in b" \t:":
            i += 1
        j = i
        while j < end and 48 <= buf[j] <= 57:
            j += 1
        if i < j <= i + 10:
            return int(buf[i:j])
        i = buf.find(b'"nonce"', i, end)  # a string "nonce", or a key with another value
    return None
