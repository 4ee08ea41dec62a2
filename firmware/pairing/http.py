# Sans-IO HTTP/1.1 for the pairing server: bytes in, requests out; responses as bytes.
# No sockets here, so the same code is tested under CPython and on the MicroPython VM.
from micropython import const

MAX_HEAD = const(1024)  # request line + headers; phones send ~250 bytes, browsers ~500
# POST /ap bodies are ~100 bytes, a portal form ~200; the longest a phone could need
# (a 63-byte password, a 253-character server name, a token) ~430
MAX_BODY = const(448)
# what one request may hold in the heap at once: its request line, its Host, the line of
# a header it reads while that arrives, then its body. The rest of a head (the headers
# nobody reads: a browser's User-Agent, padding) streams through, counted for MAX_HEAD
# but never held: a head stuffed to MAX_HEAD costs no more heap than a short one.
MAX_HELD = const(512)
_NAME = const(32)  # a header line without ":" by then names none this server reads

# the headers this server reads, each between spaces (one string: a tuple would keep a
# string object per name in the heap)
_READS = b" host content-length transfer-encoding expect accept connection "

# a Parser's flags
_KEEP_ALIVE = const(1)
_EXPECT = const(2)  # "Expect: 100-continue"
_HTML = const(4)  # Accept names text/html: a browser
_SKIP = const(8)  # inside a header line nobody reads: dropped as it arrives
_NO_COLON = const(16)  # ... which has shown no ":" yet
_BODY = const(32)  # the head has ended

# the statuses this server sends and their reason phrases, as one string: a dict would
# keep a table and its entries in the heap
_REASONS = ("\n200 OK\n204 No Content\n302 Found\n400 Bad Request\n404 Not Found\n405 Method Not Allowed"
            "\n408 Request Timeout\n409 Conflict\n413 Payload Too Large\n414 URI Too Long"
            "\n431 Request Header Fields Too Large\n503 Service Unavailable\n")
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
JSON = "application/json"
HTML = "text/html; charset=utf-8"


def request(method, target, host, body, keep_alive, html):
    """A request as this server passes it on: (method, path, query (after "?", or ""),
    host (the Host header, or ""), body (bytes), keep_alive, html (a browser: Accept
    names text/html)). A tuple, not an object: a class would sit in the heap."""
    path, query = split_once(target, "?")
    return method, path, query, host, body, keep_alive, html


def split_once(text, sep):
    """(What comes before the first `sep`, what comes after it; empty when there is
    none), for str or bytes: str.partition less the separator, which the ESP8266's
    build leaves out (ports/esp8266/mpconfigport.h:28, for bytes too)."""
    i = text.find(sep)
    return (text, text[:0]) if i < 0 else (text[:i], text[i + len(sep):])


class Parser:
    """Feed bytes as they arrive; take complete requests with next_request(). The head
    is read a line at a time, and only what MAX_HELD counts is kept."""

    def __init__(self, rest=b""):
        self.buf = rest  # what has come and is not taken: the line arriving, or the body
        self.seen = 0  # the head's bytes taken so far
        self.line = ""  # the request line, once it has come
        self.host = ""
        self.length = 0  # the body's
        self.flags = 0

    def feed(self, data):
        self.buf += data

    def pending(self):
        # part of a request has come (a timeout now deserves a 408)
        return len(self.buf) > 0 or self.seen > 0

    def held(self):
        """The bytes of the request being read that this parser holds."""
        return len(self.buf) + len(self.line) + len(self.host)

    def wants_continue(self):
        # the head asked "Expect: 100-continue" and its body is due
        return self.flags & (_BODY | _EXPECT) == _BODY | _EXPECT

    def next_request(self):
        """The next complete request (see request()), or None until more bytes arrive.
        Raises ValueError(status, reason) for a request that cannot be framed: the
        stream cannot be trusted any more, answer `status` and close (a ValueError, not
        a class of its own: a class would sit in the heap)."""
        while not self.flags & _BODY:
            if not self._head_line():
                return None
        buf, n = self.buf, self.length
        if len(buf) < n:
            return None
        method, target, _ = self.line.split(" ")
        flags = self.flags
        req = request(method, target, self.host, buf[:n], flags & _KEEP_ALIVE != 0, flags & _HTML != 0)
        self.__init__(buf[n:])  # the next request's state, with what came of it
        return req

    def _head_line(self):
        """Take the head's next line, True; False until it has all come."""
        buf, flags = self.buf, self.flags
        end = buf.find(b"\n")
        if not flags & _SKIP:
            # what of this line the request holds, whole or in part: the same check
            # however the line arrives, and before MAX_HEAD's
            self._hold(self._kept(buf if end < 0 else buf[:end]))
        if end < 0:
            if self.seen + len(buf) > MAX_HEAD + 3:  # room for a terminator still arriving
                raise ValueError(431, "headers too large")
            if flags & _SKIP or (self.line and not _reads(buf)):
                # a header nobody reads: counted and dropped as it comes, but for a CR,
                # which may start its line's end
                keep = 1 if buf[-1:] == b"\r" else 0
                if b":" in buf:
                    flags &= ~_NO_COLON
                elif not flags & _SKIP:
                    flags |= _NO_COLON
                self.flags = flags | _SKIP
                self.seen += len(buf) - keep
                self.buf = buf[len(buf) - keep:]
            return False
        line, self.buf = buf[:end], buf[end + 1:]
        self.seen += end + 1
        if self.line and not flags & _SKIP and (not line or line == b"\r"):  # the blank line
            if self.length > MAX_BODY or len(self.line) + len(self.host) + self.length > MAX_HELD:
                raise ValueError(413, "body too large")
            self.flags = flags | _BODY
            return True
        if self.seen - (2 if line[-1:] == b"\r" else 1) > MAX_HEAD:  # the head to this line's end
            raise ValueError(431, "headers too large")
        colon = line.find(b":")
        if flags & _SKIP:
            if flags & _NO_COLON and colon < 0:
                raise ValueError(400, "bad header")
            self.flags = flags & ~(_SKIP | _NO_COLON)
            return True
        if self.line and (colon < 0 or not _reads(line)):
            if colon < 0:
                raise ValueError(400, "bad header")
            return True  # a header nobody reads
        try:
            text = line.decode().strip()
        except UnicodeError:
            text = ""  # refused as either line
        if not self.line:
            parts = text.split(" ")
            if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
                raise ValueError(400, "bad request line")
            self.line = text
            if parts[2] != "HTTP/1.0":
                self.flags = flags | _KEEP_ALIVE
        elif not text:
            raise ValueError(400, "bad header")
        else:
            name, value = split_once(text, ":")
            self._header(name.strip().lower(), value.strip())
        return True

    def _kept(self, line):
        # what of a line (whole, or its start) the request holds: a request line or a
        # header it reads, all of it; another header, its name's start until its ":"
        # shows it is not one it reads
        if not self.line or _reads(line):
            return len(line)
        colon = line.find(b":")
        return colon if 0 <= colon <= _NAME else min(len(line), _NAME)

    def _hold(self, more):
        # the request would hold len(line) + len(host) + more: refused past MAX_HELD
        if len(self.line) + len(self.host) + more > MAX_HELD:
            raise ValueError(431, "headers too large") if self.line else ValueError(414, "request line too long")

    def _header(self, name, value):
        if name == "content-length":
            if not digits(value):
                raise ValueError(400, "bad content-length")
            self.length = int(value)
        elif name == "host":
            self.host = value
        elif name == "transfer-encoding":
            raise ValueError(400, "chunked body not supported")
        elif name == "expect":
            if value.lower() == "100-continue":
                self.flags |= _EXPECT
        elif name == "accept":
            if "text/html" in value:
                self.flags |= _HTML
        elif name == "connection":
            value = value.lower()
            if value == "close":
                self.flags &= ~_KEEP_ALIVE
            elif value == "keep-alive":
                self.flags |= _KEEP_ALIVE


def _reads(line):
    """Whether a header line (whole, or its start) may be one this server reads."""
    colon = line.find(b":")
    if colon < 0:
        return len(line) <= _NAME
    return colon <= _NAME and (b" " + line[:colon].strip().lower() + b" ") in _READS


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
