# The pairing HTTP server: one asyncio task around pairing.http and the handlers that
# serves every connection (and the captive portal's DNS socket) in turn: at once while
# there is work, every 20 ms otherwise. A connection is a short list (its socket, its
# parser, its deadline, what is still to write), not a task, a coroutine frame and a
# stream: the heap is the limit, not the sockets.
#
# Connections and what they hold share one allowance of heap, _HEAP: each counts
# _CONN, plus what its request holds (http.Parser.held) and its reply still to write.
# This server accepts, and reads, only what fits. A connection it cannot take yet
# waits in the listen backlog, which lives in lwIP's memory, not the 38 KB heap; beyond
# the backlog lwIP refuses the handshake itself (extmod/modlwip.c:517-550,
# _lwip_tcp_accept answers ERR_BUF); bytes it cannot read yet wait in lwIP's window. A
# flood therefore queues outside the heap instead of allocating inside it, and no
# flood takes more than _HEAP. When nothing fits, a connection quiet for a while (an
# idle keep-alive of a browser, a client trickling a request) is closed to make room,
# the one holding the most first (ESP-IDF httpd's lru_purge_enable); a young one never
# is, so a burst cannot evict a phone that has just connected.
import asyncio
import gc
import select
import socket
import sys
import time

from micropython import const

from pairing import handlers, http

_REQUEST_MS = const(10000)  # a whole request (or the next one), or a reply's writing, within this
_QUIET_MS = const(1000)  # a connection this long without a served request may be closed for a newcomer
_BACKLOG = const(5)  # connections waiting for room, held by lwIP
# the loop's period when nothing moved, as the button's: a request waits up to this long
# to be read. Shorter costs heap under a flood (more requests in flight at once: +0.6 KB
# at 5 ms) and CPU.
_POLL_MS = const(20)
_READ = const(128)
_FIRST = const(64)  # a connection is taken when it fits with room for this much of a request
# a connection's heap before it holds anything: lwIP's socket object (48 B on the
# ESP8266: extmod/modlwip.c:289-321), this server's list for it (48 B), its
# http.Parser (64 B) and a request's first bytes (16 B)
_CONN = const(176)
# what connections and their requests and replies take together: a request as large as
# they come beside its connection (alone, it must pass http.MAX_HELD to be refused), a
# page streaming beside its connection, a browser's and a phone's requests, or three
# connections just taken
_HEAP = const(704)  # _CONN + http.MAX_HELD + 16
# a page streaming: its generator's frame, its file and a line (~300 B measured on the VM)
_PAGING = const(320)
_DRAIN_MS = const(400)  # after an error reply, what is in flight is read and dropped ...
_DRAIN_QUIET_MS = const(50)  # ... until this long passes without any
SWITCH = "switch"  # until_paired(): a press asked for the other pairing mode
CLOSED = "closed"  # until_paired(): the window closed

# a connection's list
_SOCK = const(0)
_PARSER = const(1)  # None once an error reply is due: the request stream is not trusted
_DEADLINE = const(2)  # a deadline, not an idle timer: a client trickling bytes cannot hold a slot
_SERVED = const(3)  # when its last reply was made (or it was accepted): quiet since
_OUT = const(4)  # a memoryview still to write, or None
_PAGE = const(5)  # a streamed page's chunks still to come (and to close), or None
_NEXT = const(6)  # once written: _KEEP, _CLOSE, or _DRAIN (an error reply)
_CONTINUED = const(7)  # "100 Continue" sent for the request arriving
_KEEP = const(0)
_CLOSE = const(1)
_DRAIN = const(2)


class Server:
    """Serves handlers.handle, and is what its answers depend on besides the request:
    the settings `s`, the portal's host[:port] on the soft-AP (None on the LAN: no
    captive redirects there), the scanned networks, the last attempt's outcome
    (`notice`), and `accepted`, the first valid POST /ap."""

    def __init__(self, s, portal=None, networks=(), notice=None):
        self.s = s
        self.portal = portal
        self.networks = networks
        self.notice = notice
        self.accepted = None
        self.conns = []
        self.listener = None
        self.loop = None  # the task of _run()
        self.datagrams = None
        self.paging = None  # the connection streaming a page: one at a time (_PAGING each)

    async def start(self, host, port, datagrams=None):
        """Listen on (host, port). datagrams: (a bound UDP socket, a function from a
        datagram to its reply or None), served by the same loop (the captive portal's
        DNS)."""
        self.datagrams = datagrams  # first: stop() closes it whatever fails next
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo(host, port)[0][-1])
        sock.listen(_BACKLOG)
        sock.setblocking(False)
        self.listener = sock
        self.loop = asyncio.create_task(self._run())

    async def until_paired(self, app, window_ms=0):
        """The accepted POST /ap (a dict), SWITCH on a press, or CLOSED when window_ms
        (0: none) has passed."""
        t0 = time.ticks_ms()
        while self.accepted is None:
            await asyncio.sleep_ms(200)
            if app.take_press():
                return SWITCH
            if window_ms and time.ticks_diff(time.ticks_ms(), t0) >= window_ms:
                return CLOSED
        await asyncio.sleep_ms(300)  # let the reply leave before the caller moves on
        return self.accepted

    async def stop(self):
        listener, self.listener = self.listener, None
        if listener:
            listener.close()  # and with it what waited in its backlog
        if self.datagrams:
            self.datagrams[0].close()
        while self.conns:
            self._close(self.conns[-1])
        if self.loop:
            # let it end: a task not yet ended holds this module and what it served in the heap
            self.loop.cancel()
            for _ in range(50):
                if self.loop.done():
                    break
                await asyncio.sleep_ms(10)

    async def _run(self):
        # A polled loop rather than asyncio.start_server, which accepts whatever
        # arrives and gives each connection a task at once (extmod/asyncio/stream.py,
        # Server._serve). Sockets are non-blocking: a read or write that cannot move
        # gives None, and the connection waits for the next pass.
        listener, datagrams = self.listener, self.datagrams
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        if datagrams:
            poller.register(datagrams[0], select.POLLIN)
        while self.listener:
            for sock, _ in poller.ipoll(0):
                if sock is listener:
                    self._take(listener)
                elif datagrams:
                    _answer(sock, datagrams[1])
            await asyncio.sleep_ms(0 if self._pass() else _POLL_MS)

    def _pass(self):
        """Every connection's step, in the order they came (the first POST /ap wins);
        True when something moved."""
        conns = self.conns
        moved = False
        now = time.ticks_ms()
        i = 0
        while i < len(conns):
            conn = conns[i]
            try:
                moved = self._step(conn, now) or moved
            except MemoryError:
                # drop this connection without a reply (that would allocate): keep the device
                self._close(conn)
                conn = None
                gc.collect()
                print("http: out of memory")
            except OSError:
                self._close(conn)  # the phone went away
            except Exception as e:  # a bug met by one connection: that connection's, not the device's
                print("http: connection dropped:", type(e).__name__)  # (never its text: it may quote input)
                self._close(conn)
            if i < len(conns) and conns[i] is conn:
                i += 1  # else it closed, and the next one is at i now
        return moved

    def _take(self, listener):
        # what waits in the backlog is taken only while it fits, with room for a start
        while self._room(_CONN + _FIRST, None) >= _CONN + _FIRST:
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # none waiting (or it gave up while waiting)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = time.ticks_ms()
            self.conns.append([sock, http.Parser(), time.ticks_add(now, _REQUEST_MS), now, None, None, _KEEP, False])

    def _room(self, need, keep):
        """The bytes of _HEAP the connections leave. When `need` (None: nothing is to
        be closed) does not fit, one connection (not `keep`, not the one streaming a
        page, whose deadline bounds it) served nothing for _QUIET_MS is closed first,
        without a reply: one with no request under way if there is one (an idle
        keep-alive, a silent socket), else the one holding the most."""
        now = time.ticks_ms()
        used = most = 0
        idle = hog = None
        for conn in self.conns:
            took = _CONN
            parser = conn[_PARSER]
            if parser is not None:
                took += parser.held()
            if conn[_OUT] is not None:
                took += len(conn[_OUT])
            if conn is self.paging:
                took += _PAGING
            used += took
            if conn is keep or conn is self.paging or time.ticks_diff(now, conn[_SERVED]) < _QUIET_MS:
                continue
            if parser is not None and not parser.pending() and conn[_OUT] is None and conn[_PAGE] is None:
                idle = idle or conn  # it takes _CONN
            elif took > most:
                hog, most = conn, took
        if need is not None and used + need > _HEAP and (idle or hog):
            used -= _CONN if idle else most
            self._close(idle or hog)
        return _HEAP - used

    def _step(self, conn, now):
        """What one connection can do now; True when something moved."""
        if time.ticks_diff(now, conn[_DEADLINE]) >= 0:
            if conn[_OUT] is None and conn[_PAGE] is None and conn[_PARSER] and conn[_PARSER].pending():
                self._refuse(conn, 408, "timeout", now)  # a request cut short by its deadline
            else:
                self._close(conn)
            return True
        if conn[_OUT] is not None or conn[_PAGE] is not None:
            return self._send(conn, now)
        # what fits (0: it waits, what it sent waiting in lwIP's window, not in the heap).
        # Only a request under way has another connection closed for room; a connection
        # between requests may always read a byte: it is how it learns the phone has gone.
        parser = conn[_PARSER]
        if parser is None:
            size = _READ
        elif parser.pending():
            size = min(_READ, self._room(_READ, conn))
        else:
            size = max(1, min(_READ, self._room(None, conn)))
        if size <= 0:
            return False
        data = conn[_SOCK].read(size)
        if data is None:  # nothing came
            if conn[_PARSER] is None and time.ticks_diff(now, conn[_SERVED]) >= _DRAIN_QUIET_MS:
                self._close(conn)  # the error reply has gone and nothing more is in flight
            return False
        if not data:
            self._close(conn)
            return True
        if conn[_PARSER] is None:
            conn[_SERVED] = now  # dropped: only the error reply's rest of the input
        else:
            conn[_PARSER].feed(data)
            data = None  # the parser has a copy
            self._serve(conn, now)
            if conn[_OUT] is not None:
                self._send(conn, now)  # at once: a reply waiting for the next pass is heap held
        return True

    def _serve(self, conn, now):
        """The reply to the next complete request, if one has arrived."""
        parser = conn[_PARSER]
        try:
            req = parser.next_request()
        except ValueError as e:
            status, reason = e.args  # (see http.Parser.next_request)
            self._refuse(conn, status, reason, now)
            return
        if req is None:
            if parser.wants_continue() and not conn[_CONTINUED]:
                conn[_CONTINUED] = True  # curl waits a second for this before it sends the body
                conn[_OUT] = memoryview(http.CONTINUE)
            return
        conn[_CONTINUED] = False
        method, keep_alive = req[0], req[5]  # (see http.request)
        status, body, content_type, headers = handlers.handle(req, self)
        if method == "POST":
            # the JSON parser a POST /ap brought in: out of the heap until the next one
            # (it would stay there through the join and the save)
            sys.modules.pop("jsonobj", None)
        streamed = not isinstance(body, bytes)  # a page from flash: its length is known at the end
        keep = keep_alive and not streamed
        out = http.head(status, None if streamed else len(body), keep, content_type, headers)
        if method == "HEAD":
            pass  # the head alone (a page's generator is never made)
        elif streamed:
            conn[_PAGE] = body  # (its function, their arguments), called on its turn
        else:
            out += body  # one segment: two would meet the client's delayed ACK
        conn[_OUT] = memoryview(out)
        conn[_NEXT] = _KEEP if keep else _CLOSE
        conn[_DEADLINE] = time.ticks_add(now, _REQUEST_MS)
        conn[_SERVED] = now

    def _send(self, conn, now):
        """Write what is due, as far as the socket takes it: the reply, or a page's next
        lines, a line at a time in the heap (with TCP_NODELAY no write waits for the ACK
        of the one before; the page is done sooner, and its room free for others)."""
        out = conn[_OUT]
        written = 0
        while True:
            if out is None:  # the page's next line, when it is this connection's turn
                if self.paging is None:
                    if self._room(_PAGING, conn) < _PAGING:
                        return written > 0  # it waits for room, as a read does
                    make, args = conn[_PAGE]
                    conn[_PAGE] = make(*args)  # the page's generator: its frame and its file
                    self.paging = conn
                elif self.paging is not conn:
                    return written > 0
                line = next(conn[_PAGE], None)
                if line is None:
                    conn[_PAGE] = None  # the page has ended
                    self.paging = None
                    break
                out = memoryview(line)
            sent = conn[_SOCK].write(out) if len(out) else 0
            if sent:
                out = out[sent:]
                written += sent
            if len(out):
                conn[_OUT] = out
                return written > 0
            out = conn[_OUT] = None
            if conn[_PAGE] is None:
                break
        # the reply has gone
        after = conn[_NEXT]
        if after == _CLOSE:
            self._close(conn)
        elif after == _DRAIN:
            conn[_DEADLINE] = time.ticks_add(now, _DRAIN_MS)
            conn[_SERVED] = now
        else:
            conn[_DEADLINE] = time.ticks_add(now, _REQUEST_MS)
            self._serve(conn, now)  # a request that came in the same segments
        return True

    def _refuse(self, conn, status, reason, now):
        # An error reply, then close. Closing with unread input makes the kernel send
        # RST, which can destroy the reply before the phone reads it: what is in flight
        # is read and dropped first (bounded: _DRAIN_MS).
        conn[_PARSER] = None  # and with it what was buffered
        self._drop_page(conn)
        conn[_OUT] = memoryview(http.response(status, http.error_body(status, reason), False))
        conn[_NEXT] = _DRAIN
        conn[_DEADLINE] = time.ticks_add(now, _REQUEST_MS)

    def _drop_page(self, conn):
        # a page not (all) sent: its generator closed, and with it its file
        if self.paging is conn:
            conn[_PAGE].close()
            self.paging = None
        conn[_PAGE] = None

    def _close(self, conn):
        if conn in self.conns:
            self.conns.remove(conn)
        self._drop_page(conn)
        conn[_OUT] = conn[_PARSER] = None
        try:
            conn[_SOCK].close()
        except OSError:
            pass


def _answer(sock, answer):
    # one datagram, and answer(datagram)'s reply to it if any
    try:
        query, peer = sock.recvfrom(512)
        reply = answer(query)
        if reply:
            sock.sendto(reply, peer)
    except OSError:
        pass  # a phone that left; the next query is another


def readable(poller):
    """A socket registered with `poller` has something to read (no list per call)."""
    for _ in poller.ipoll(0):
        return True
    return False
