# Sans-IO HTTP/1.1 for the pairing server: bytes in, requests out; responses as bytes.
# No sockets here, so the same code is tested under CPython and on the MicroPython VM.
from micropython import const

MAX_HEAD = const(1024)  # request line + headers; phones send ~250 bytes
MAX_BODY = const(512)  # POST /ap bodies are ~100 bytes

REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class HTTPError(Exception):
    # The request stream cannot be trusted any more: answer `status` and close.
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Parser:
    """Feed bytes as they arrive; take complete requests with next_request()."""

    def __init__(self):
        self.buf = b""

    def feed(self, data):
        self.buf += data

    def pending(self):
        # a partial request is buffered (a timeout now deserves a 408)
        return len(self.buf) > 0

    def next_request(self):
        """The next complete request as (method, path, body, keep_alive), or None
        until more bytes arrive. Raises HTTPError for a request that cannot be framed."""
        buf = self.buf
        end, sep = _head_end(buf)
        if end < 0:
            if len(buf) > MAX_HEAD + 3:  # room for a terminator still arriving
                raise HTTPError(431, "headers too large")
            return None
        if end > MAX_HEAD:
            raise HTTPError(431, "headers too large")
        method, path, keep_alive, length = _parse_head(buf[:end])
        if length > MAX_BODY:
            raise HTTPError(413, "body too large")
        start = end + sep
        if len(buf) < start + length:
            return None
        self.buf = buf[start + length:]
        return method, path, buf[start:start + length], keep_alive


def _head_end(buf):
    # CRLF per the RFC; bare LF too, for hand-typed requests
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return lf, 2
    return crlf, 4


def _parse_head(head):
    try:
        lines = head.decode().split("\n")
        method, target, version = lines[0].strip().split(" ")
    except (UnicodeError, ValueError):
        raise HTTPError(400, "bad request line")
    if not version.startswith("HTTP/1."):
        raise HTTPError(400, "bad version")
    keep_alive = version != "HTTP/1.0"
    length = 0
    for line in lines[1:]:
        parts = line.split(":", 1)
        if len(parts) != 2:
            raise HTTPError(400, "bad header")
        name = parts[0].strip().lower()
        value = parts[1].strip()
        if name == "content-length":
            if not value.isdigit():
                raise HTTPError(400, "bad content-length")
            length = int(value)
        elif name == "transfer-encoding":
            raise HTTPError(400, "chunked body not supported")
        elif name == "connection":
            value = value.lower()
            if value == "close":
                keep_alive = False
            elif value == "keep-alive":
                keep_alive = True
    return method, target.split("?")[0], keep_alive, length


def response(status, body, keep_alive=True):
    head = "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nConnection: %s\r\nContent-Length: %d\r\n\r\n" % (
        status,
        REASONS[status],
        "keep-alive" if keep_alive else "close",
        len(body),
    )
    return head.encode() + body


def error_body(status, reason):
    # reasons are our own constant texts: nothing from the request is echoed
    return ('{"error":%d,"reason":"%s"}' % (status, reason)).encode()
