# Sans-IO HTTP/1.1 for the pairing server: bytes in, requests out; responses as bytes.
# No sockets here, so the same code is tested under CPython and on the MicroPython VM.
from micropython import const

MAX_HEAD = const(1024)  # request line + headers; phones send ~250 bytes, browsers ~500
MAX_BODY = const(512)  # POST /ap bodies are ~100 bytes, a portal form ~200

# the statuses this server sends and their reason phrases, as one string: a dict would
# keep a table and its entries in the heap
_REASONS = ("\n200 OK\n204 No Content\n302 Found\n400 Bad Request\n404 Not Found\n405 Method Not Allowed"
            "\n408 Request Timeout\n409 Conflict\n413 Payload Too Large\n431 Request Header Fields Too Large"
            "\n503 Service Unavailable\n")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
JSON = "application/json"
HTML = "text/html; charset=utf-8"


class HTTPError(Exception):
    # The request stream cannot be trusted any more: answer `status` and close.
    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Request:
    """One request: method, path, query (the part after "?", or ""), host (the Host
    header, or ""), body (bytes), keep_alive, html (a browser: Accept names text/html)."""

    def __init__(self, method, target, host, body, keep_alive, html=False):
        self.method = method
        path, _, self.query = target.partition("?")
        self.path = path
        self.host = host
        self.body = body
        self.keep_alive = keep_alive
        self.html = html


class Parser:
    """Feed bytes as they arrive; take complete requests with next_request()."""

    def __init__(self):
        self.buf = b""
        self.wants_continue = False  # the head asked "Expect: 100-continue" and the body is due

    def feed(self, data):
        self.buf += data

    def pending(self):
        # a partial request is buffered (a timeout now deserves a 408)
        return len(self.buf) > 0

    def next_request(self):
        """The next complete Request, or None until more bytes arrive. Raises
        HTTPError for a request that cannot be framed."""
        buf = self.buf
        end, sep = _head_end(buf)
        if end < 0:
            if len(buf) > MAX_HEAD + 3:  # room for a terminator still arriving
                raise HTTPError(431, "headers too large")
            return None
        if end > MAX_HEAD:
            raise HTTPError(431, "headers too large")
        method, target, host, keep_alive, length, expect, html = _parse_head(buf[:end])
        if length > MAX_BODY:
            raise HTTPError(413, "body too large")
        start = end + sep
        if len(buf) < start + length:
            self.wants_continue = expect
            return None
        self.wants_continue = False
        self.buf = buf[start + length:]
        return Request(method, target, host, buf[start:start + length], keep_alive, html)


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
    host = ""
    expect = html = False
    for line in lines[1:]:
        parts = line.split(":", 1)
        if len(parts) != 2:
            raise HTTPError(400, "bad header")
        name = parts[0].strip().lower()
        value = parts[1].strip()
        if name == "content-length":
            if not digits(value):
                raise HTTPError(400, "bad content-length")
            length = int(value)
        elif name == "host":
            host = value
        elif name == "transfer-encoding":
            raise HTTPError(400, "chunked body not supported")
        elif name == "expect":
            expect = value.lower() == "100-continue"
        elif name == "accept":
            html = "text/html" in value
        elif name == "connection":
            value = value.lower()
            if value == "close":
                keep_alive = False
            elif value == "keep-alive":
                keep_alive = True
    return method, target, host, keep_alive, length, expect, html


def digits(text):
    # ASCII digits only: str.isdigit() takes "²" and other Unicode digits
    if not text or len(text) > 9:
        return False
    for c in text:
        if not "0" <= c <= "9":
            return False
    return True


def reason(status):
    """The reason phrase of a status this server sends (ValueError for another)."""
    start = _REASONS.index("\n%d " % status) + 5
    return _REASONS[start:_REASONS.index("\n", start)]


def head(status, length=None, keep_alive=True, content_type=JSON, headers=""):
    """A response head; `length` None: the body ends when the connection closes."""
    return ("HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%sConnection: %s\r\n%s\r\n" % (
        status,
        reason(status),
        content_type,
        headers,
        "keep-alive" if keep_alive and length is not None else "close",
        "" if length is None else "Content-Length: %d\r\n" % length,
    )).encode()


def response(status, body, keep_alive=True, content_type=JSON, headers=""):
    return head(status, len(body), keep_alive, content_type, headers) + body


def error_body(status, reason):
    # reasons are our own constant texts: nothing from the request is echoed
    return ('{"error":%d,"reason":"%s"}' % (status, reason)).encode()


def form(text):
    """application/x-www-form-urlencoded (a form body, a query string) -> dict."""
    d = {}
    if text:
        for pair in text.split("&"):
            key, value = pair.split("=", 1)  # ValueError without one
            d[_unquote(key)] = _unquote(value)
    return d


def _unquote(text):
    raw = bytearray()
    parts = text.replace("+", " ").split("%")
    raw.extend(parts[0].encode())
    for part in parts[1:]:
        if len(part) < 2 or not _hex2(part):
            raise ValueError("bad escape")
        raw.append(int(part[:2], 16))
        raw.extend(part[2:].encode())
    return bytes(raw).decode()


def _hex2(part):
    for c in part[:2]:
        if not ("0" <= c <= "9" or "a" <= c <= "f" or "A" <= c <= "F"):
            return False
    return True
