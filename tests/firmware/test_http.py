# pairing/http.py: the sans-IO HTTP/1.1 parser and the response bytes.
# Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py).
from pairing.http import CONTINUE, MAX_BODY, MAX_HEAD, MAX_HELD, Parser, error_body, form, head, reason, response

from check import raises

GET = b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\nConnection: Keep-Alive\r\n\r\n"
BODY = b'{"ssid":"ITT","password":"12345678"}'
POST = (
    b"POST /ap HTTP/1.1\r\nHost: 10.10.7.1\r\nContent-Type: application/json\r\n"
    + ("Content-Length: %d\r\n\r\n" % len(BODY)).encode()
    + BODY
)


def feed_pieces(pieces):
    """Feed the pieces in turn, taking every request that completes. -> (requests, parser)
    A request is (method, path, body, keep_alive)."""
    p = Parser()
    got = []
    for piece in pieces:
        p.feed(piece)
        req = p.next_request()
        while req is not None:
            got.append(plain(req))
            req = p.next_request()
    return got, p


def plain(req):
    method, path, _, _, body, keep_alive, _ = req
    return method, path, body, keep_alive


def parse(data):
    p = Parser()
    p.feed(data)
    return plain(p.next_request())


def request(data):
    p = Parser()
    p.feed(data)
    return p.next_request()


def keep_alive(data):
    return parse(data)[3]


def path_of(data):
    return parse(data)[1]


def status_of(data):
    return raises(ValueError, parse, data).args[0]


def head_of(n):
    """A GET head of exactly n bytes, without its blank line."""
    start = b"GET /device HTTP/1.1\r\nX-Pad: "
    return start + b"a" * (n - len(start))


def test_complete_get():
    got, p = feed_pieces([GET])
    assert got == [("GET", "/device", b"", True)]
    assert not p.pending()


def test_get_fed_one_byte_at_a_time():
    p = Parser()
    for i in range(len(GET) - 1):
        p.feed(GET[i:i + 1])
        assert p.next_request() is None
        assert p.pending()
    p.feed(GET[-1:])
    assert plain(p.next_request()) == ("GET", "/device", b"", True)
    assert not p.pending()


def test_post_split_at_any_two_boundaries():
    want = [("POST", "/ap", BODY, True)]
    for i in range(len(POST) + 1):
        for j in range(i, len(POST) + 1):
            got, p = feed_pieces([POST[:i], POST[i:j], POST[j:]])
            assert got == want, (i, j)
            assert not p.pending()


def test_post_body_arriving_in_pieces():
    head, body = POST[: len(POST) - len(BODY)], BODY
    p = Parser()
    p.feed(head)
    assert p.next_request() is None
    p.feed(body[:5])
    assert p.next_request() is None
    p.feed(body[5:])
    assert plain(p.next_request()) == ("POST", "/ap", BODY, True)


def test_pipelined_requests_in_one_feed():
    p = Parser()
    p.feed(GET + POST)
    assert plain(p.next_request()) == ("GET", "/device", b"", True)
    assert plain(p.next_request()) == ("POST", "/ap", BODY, True)
    assert p.next_request() is None
    assert not p.pending()


def test_keep_alive_defaults_and_connection_header():
    assert keep_alive(b"GET / HTTP/1.1\r\n\r\n") is True
    assert keep_alive(b"GET / HTTP/1.0\r\n\r\n") is False
    assert keep_alive(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n") is False
    assert keep_alive(b"GET / HTTP/1.1\r\nconnection: CLOSE\r\n\r\n") is False
    assert keep_alive(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") is True
    assert keep_alive(b"GET / HTTP/1.0\r\nCONNECTION:keep-alive\r\n\r\n") is True


def test_query_string_stripped():
    assert path_of(b"GET /device?x=1&y=2 HTTP/1.1\r\n\r\n") == "/device"


def test_bare_lf_requests():
    body = b"ssid=a"
    data = b"GET /device HTTP/1.1\nHost: x\n\n" + b"POST /ap HTTP/1.1\nContent-Length: 6\n\n" + body
    got, p = feed_pieces([data])
    assert got == [("GET", "/device", b"", True), ("POST", "/ap", body, True)]
    assert not p.pending()


def test_malformed_request_line_is_400():
    for line in (b"GET /device", b"GET  /device HTTP/1.1", b"GET /device HTTP/1.1 x",
                 b"", b"GET /device HTTP/2.0", b"GET /device FTP/1.1"):
        assert status_of(line + b"\r\nHost: x\r\n\r\n") == 400, line


def test_bad_header_line_is_400():
    assert status_of(b"GET / HTTP/1.1\r\nHost x\r\n\r\n") == 400


def test_bad_content_length_is_400():
    for value in (b"abc", b"-1", b"1.5", b"", b"0x10", b"1 2"):
        assert status_of(b"POST /ap HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n") == 400, value


def test_transfer_encoding_is_400():
    assert status_of(b"POST /ap HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n") == 400


def test_head_over_max_without_terminator_is_431():
    p = Parser()
    p.feed(head_of(MAX_HEAD))
    assert p.next_request() is None  # still within the limit
    p.feed(b"aaaa")  # no terminator can now end a head of MAX_HEAD bytes
    assert raises(ValueError, p.next_request).args[0] == 431


def test_head_of_max_size_accepted_terminator_beyond_is_431():
    assert path_of(head_of(MAX_HEAD) + b"\r\n\r\n") == "/device"
    assert status_of(head_of(MAX_HEAD + 1) + b"\r\n\r\n") == 431
    assert path_of(head_of(MAX_HEAD) + b"\n\n") == "/device"
    assert status_of(head_of(MAX_HEAD + 1) + b"\n\n") == 431


def test_head_of_max_size_accepted_however_it_is_split():
    # the limit must not depend on how the bytes arrive: the same head that is
    # accepted in one piece must be accepted byte by byte
    for n, end in ((MAX_HEAD, b"\r\n\r\n"), (MAX_HEAD - 2, b"\r\n\r\n"), (MAX_HEAD, b"\n\n")):
        data = head_of(n) + end
        assert path_of(data) == "/device"
        got, p = feed_pieces([data[i:i + 1] for i in range(len(data))])
        assert got == [("GET", "/device", b"", True)], n


def test_body_over_max_is_413_before_it_arrives():
    head = b"POST /ap HTTP/1.1\r\nContent-Length: %s\r\n\r\n"
    p = Parser()
    p.feed(head.replace(b"%s", str(MAX_BODY + 1).encode()))
    assert raises(ValueError, p.next_request).args[0] == 413
    p = Parser()
    p.feed(head.replace(b"%s", str(MAX_BODY).encode()))
    assert p.next_request() is None  # the largest body allowed: wait for it
    p.feed(b"x" * MAX_BODY)
    assert len(p.next_request()[4]) == MAX_BODY


def test_headers_nobody_reads_stream_through_without_being_held():
    # a head padded to MAX_HEAD holds what a short one does, however it arrives
    data = head_of(MAX_HEAD - 40) + b"\r\nHost: 10.10.7.1\r\nAccept: text/html\r\n\r\n"
    assert len(data) == MAX_HEAD
    for size in (1, 7, 128):
        p = Parser()
        most = 0
        for i in range(0, len(data), size):
            p.feed(data[i:i + size])
            req = p.next_request()
            most = max(most, p.held())
        assert req is not None and req[:4] == ("GET", "/device", "", "10.10.7.1") and req[6] is True, size
        # the request line, Host, and a line it reads as it arrives; never the padding
        assert most <= len("GET /device HTTP/1.1" "10.10.7.1" "Accept: text/html\r") + size, (size, most)


def test_a_line_without_a_colon_is_400_however_long():
    for n in (10, 200, 900):
        data = b"GET / HTTP/1.1\r\n" + b"x" * n + b"\r\n\r\n"
        assert status_of(data) == 400, n
        status = None
        p = Parser()
        for i in range(len(data)):
            p.feed(data[i:i + 1])
            try:
                p.next_request()
            except ValueError as e:
                status = e.args[0]
                break
        assert status == 400, n


def test_what_a_request_holds_is_capped():
    # its request line (414), a header it reads (431), its body with them (413)
    line = b"GET /?" + b"a" * MAX_HELD + b" HTTP/1.1\r\n\r\n"
    assert status_of(line) == 414
    p = Parser()
    p.feed(line[:MAX_HELD + 1])  # no line end yet: refused as soon as it cannot fit
    assert raises(ValueError, p.next_request).args[0] == 414
    assert status_of(b"GET / HTTP/1.1\r\nHost: " + b"h" * MAX_HELD + b"\r\n\r\n") == 431
    host = b"h" * (MAX_HELD - MAX_BODY)
    post = b"POST /ap HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
    assert status_of(post % (host, MAX_BODY)) == 413
    assert parse(post % (host[:-len(b"POST /ap HTTP/1.1")], MAX_BODY) + b"x" * MAX_BODY)[2] == b"x" * MAX_BODY


def outcome(data, size):
    """What a parser makes of `data` read `size` bytes at a time: (requests, status)."""
    p = Parser()
    got = []
    try:
        for i in range(0, len(data), size):
            p.feed(data[i:i + size])
            req = p.next_request()
            while req is not None:
                got.append(req)
                req = p.next_request()
    except ValueError as e:
        return got, e.args[0]
    return got, None


def test_near_the_caps_the_outcome_does_not_depend_on_how_a_head_arrives():
    # what a request holds is checked the same on a whole line and on a line's start
    line = b"GET /?" + b"a" * 470 + b" HTTP/1.1\r\n"
    heads = [
        line + b"Host: 10.10.7.1\r\nUpgrade-Insecure-Requests: 1\r\n\r\n",  # a name's start fits or not
        line + b"Host: 10.10.7.1\r\nno colon here\r\n\r\n",
        b"GET /?" + b"a" * 1100 + b" HTTP/1.1\r\n\r\n",  # past MAX_HELD and MAX_HEAD: 414 either way
    ]
    for data in heads:
        whole = outcome(data, len(data))
        for size in (1, 7, 21, 64, 128):
            assert outcome(data, size) == whole, (data[:40], size)
    assert outcome(heads[2], len(heads[2]))[1] == 414


def test_invalid_utf8_in_request_line_is_400():
    assert status_of(b"GET /\xff\xfe HTTP/1.1\r\n\r\n") == 400


def test_response_exact_bytes():
    assert response(200, b'{"error":0}') == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/json\r\n"
        b"Connection: keep-alive\r\n"
        b"Content-Length: 11\r\n"
        b"\r\n"
        b'{"error":0}'
    )


def test_response_connection_close():
    assert response(400, b'{"error":400,"reason":"bad json"}', keep_alive=False) == (
        b"HTTP/1.1 400 Bad Request\r\n"
        b"Content-Type: application/json\r\n"
        b"Connection: close\r\n"
        b"Content-Length: 33\r\n"
        b"\r\n"
        b'{"error":400,"reason":"bad json"}'
    )


def test_reason_phrases():
    # the statuses the server sends, each with its RFC 9110 phrase; any other is refused
    assert [reason(n) for n in (200, 204, 302, 400, 404, 405)] == [
        "OK", "No Content", "Found", "Bad Request", "Not Found", "Method Not Allowed"]
    assert [reason(n) for n in (408, 409, 413, 431, 503)] == [
        "Request Timeout", "Conflict", "Payload Too Large", "Request Header Fields Too Large", "Service Unavailable"]
    assert reason(414) == "URI Too Long"
    for n in (0, 20, 500, 4000, 2000):
        raises(ValueError, reason, n)


def test_error_body_exact_bytes():
    assert error_body(431, "headers too large") == b'{"error":431,"reason":"headers too large"}'
    assert error_body(404, "no such path") == b'{"error":404,"reason":"no such path"}'


def test_host_and_query():
    req = request(b"GET /?server=cloud.example%3A8443&token=abc HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n")
    assert req[1:4] == ("/", "server=cloud.example%3A8443&token=abc", "10.10.7.1")
    assert form(req[2]) == {"server": "cloud.example:8443", "token": "abc"}
    assert request(b"GET /x HTTP/1.1\r\n\r\n")[3] == ""


def test_form_decoding():
    assert form("") == {}
    assert form("ssid=Caf%C3%A9+bar&password=") == {"ssid": "Caf\u00e9 bar", "password": ""}
    raises(ValueError, form, "ssid=a&flag")
    raises(ValueError, form, "a=%zz")
    raises(ValueError, form, "a=%4")
    raises(UnicodeError, form, "a=%ff")


def test_expect_100_continue_is_reported_until_the_body_arrives():
    p = Parser()
    p.feed(b"POST /ap HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 6\r\n\r\n")
    assert p.next_request() is None and p.wants_continue()
    p.feed(b"ssid=a")
    assert p.next_request()[4] == b"ssid=a" and not p.wants_continue()
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


def test_content_length_in_ascii_digits_only():
    for value in ("\u00b2", "1\u0660", "+5", "-1", " ", "0x10", "1234567890"):
        head_ = ("POST /ap HTTP/1.1\r\nContent-Length: %s\r\n\r\n" % value).encode()
        assert status_of(head_) == 400, value


def test_head_with_extra_headers_and_no_length():
    assert head(302, 0, True, "text/html; charset=utf-8", "Location: http://10.10.7.1/\r\n") == (
        b"HTTP/1.1 302 Found\r\nContent-Type: text/html; charset=utf-8\r\n"
        b"Location: http://10.10.7.1/\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
    # a body that ends when the connection closes: never keep-alive
    assert head(200, None, True, "text/html; charset=utf-8") == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nConnection: close\r\n\r\n")
