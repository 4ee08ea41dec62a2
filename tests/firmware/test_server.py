# pairing/server.py's passes over its connections, with sockets that hold bytes in
# memory: who is closed for room, and what a failure in one connection does. Runs under
# pytest and on the MicroPython VM (tests/firmware/vmrun.py).
import time

from pairing import portal, server
from pairing.server import Server

if not hasattr(time, "ticks_ms"):  # CPython: MicroPython's tick functions, which the server uses
    time.ticks_ms = lambda: int(time.monotonic() * 1000)
    time.ticks_add = lambda ticks, delta: ticks + delta
    time.ticks_diff = lambda a, b: a - b

S = {"deviceid": "100000788a", "apikey": "4b21ebbe-8870-4d4a-93f2-7c6cfeff5fea", "chipid": "0a1b2c3d",
     "ap_ssid": ""}
GET_DEVICE = b"GET /device HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n"
GET_PAGE = b"GET / HTTP/1.1\r\nHost: 10.10.7.1\r\nAccept: text/html\r\n\r\n"


class Phone:
    """A connection's socket: what the phone sent and has not been read, what the server
    wrote; `window` bytes more may be written (a phone that reads slowly)."""

    def __init__(self, sent=b"", window=1 << 20):
        self.inbox = sent
        self.got = b""
        self.window = window
        self.closed = False

    def read(self, n):
        if not self.inbox:
            return None  # nothing came (a non-blocking socket)
        data, self.inbox = self.inbox[:n], self.inbox[n:]
        return data

    def write(self, data):
        n = min(len(data), self.window)
        self.window -= n
        self.got += bytes(data[:n])
        return n or None

    def setblocking(self, flag):
        pass

    def setsockopt(self, *args):
        pass

    def close(self):
        self.closed = True


class Backlog:
    # the listening socket: accept() takes the next phone waiting
    def __init__(self, phones):
        self.phones = list(phones)

    def accept(self):
        if not self.phones:
            raise OSError(11)
        return self.phones.pop(0), ("10.10.7.2", 50000)


class ChipSocket:
    # the chips' socket constants the server sets on what it takes (extmod/modlwip.c:
    # 1859-1860, ports/esp32/modsocket.c:1004,1012); the unix VM's socket module has none
    IPPROTO_TCP = 6
    TCP_NODELAY = 1


def take(srv, phones):
    # phones waiting in the backlog, taken as the server's loop takes them
    real, server.socket = server.socket, ChipSocket
    try:
        srv._take(Backlog(phones))
    finally:
        server.socket = real


def serving(*phones):
    """A server with `phones` taken in that order (all of them: they fit)."""
    srv = Server(S, "10.10.7.1")
    take(srv, phones)
    assert len(srv.conns) == len(phones)
    return srv


def quiet(srv, phone):
    # served nothing for 2 s: longer than the 1 s after which a connection may be closed
    # (server._QUIET_MS, a const() the VM keeps out of the module)
    for conn in srv.conns:
        if conn[0] is phone:
            conn[3] = time.ticks_add(time.ticks_ms(), -2000)


def test_a_phone_is_answered():
    phone = Phone(GET_DEVICE)
    srv = serving(phone)
    srv._pass()
    assert phone.got.startswith(b"HTTP/1.1 200 OK\r\n") and b'"deviceid":"100000788a"' in phone.got


def test_a_page_whose_generator_cannot_be_made_drops_that_connection_only():
    def no_heap(*args):
        raise MemoryError

    browser, app = Phone(GET_PAGE), Phone()
    srv = serving(browser, app)
    real, portal.page = portal.page, no_heap
    try:
        srv._pass()
    finally:
        portal.page = real
    assert browser.got.startswith(b"HTTP/1.1 200 OK\r\n")  # its head went; the page could not
    assert browser.closed and srv.paging is None
    app.inbox = GET_DEVICE  # the server goes on for everyone else
    srv._pass()
    assert app.got.startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_page_streaming_is_never_closed_for_room():
    # a phone reading its page slowly (its deadline bounds it), newcomers waiting
    browser = Phone(GET_PAGE, window=300)
    srv = serving(browser)
    for _ in range(3):
        srv._pass()
    assert srv.paging is not None and not browser.closed
    quiet(srv, browser)
    take(srv, [Phone() for _ in range(4)])
    assert not browser.closed and srv.paging[0] is browser


def test_a_connection_with_nothing_to_read_closes_no_other():
    # an idle keep-alive beside a phone whose POST /ap body is still arriving, and no
    # room left: the idle one waits; the phone's own read closes the idle one for room
    body = b'{"ssid":"home","password":"%s"}' % (b"p" * 40)
    head = b"POST /ap HTTP/1.1\r\nHost: 10.10.7.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    idle, poster, other = Phone(), Phone(head + body[:30]), Phone(b"GET /" + b"a" * 300)
    srv = serving(idle, poster, other)
    for _ in range(4):
        srv._pass()
    assert srv._room(None, None) < 128 and srv.conns[1][1].pending()  # no room for a read (server._READ)
    quiet(srv, idle)
    quiet(srv, poster)
    poster.inbox = body[30:]
    srv._pass()
    assert idle.closed and not poster.closed and not other.closed
    assert poster.got.startswith(b"HTTP/1.1 200 OK\r\n"), poster.got
    assert srv.accepted == {"ssid": "home", "password": "p" * 40}
