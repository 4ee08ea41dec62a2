# The pairing HTTP server: an asyncio driver around pairing.http and the handlers.
# The heap is the limit, not the sockets: a connection costs heap only once accepted
# (a task, a stream, a parser), so this server accepts only when it has a slot. A
# connection it cannot take yet waits in the listen backlog, which lives in lwIP's
# memory, not the 38 KB heap; beyond the backlog lwIP refuses the handshake itself
# (extmod/modlwip.c:517-550, _lwip_tcp_accept answers ERR_BUF). A flood therefore
# queues outside the heap instead of allocating inside it.
# When all slots are taken, a connection quiet for a while (an idle keep-alive of a
# browser, a client trickling a request) is closed to make room, the least recently
# served first (ESP-IDF httpd's lru_purge_enable); a young one never is, so a burst
# cannot evict a phone that has just connected.
import asyncio
import gc
import select
import socket
import sys
import time

from micropython import const

from pairing import handlers, http

_MAX_CONNECTIONS = const(5)  # a browser's page load and a phone's exchange; each holds up to 1 KB of head
_REQUEST_MS = const(10000)  # a whole request (or the next one) must arrive within this
_QUIET_MS = const(1000)  # a connection this long without a served request may be closed for a newcomer
_BACKLOG = const(5)  # connections waiting for a slot, held by lwIP
_POLL_MS = const(20)  # the accept loop's period, as the button's
_REAP_MS = const(500)
_READ = const(128)
# a streamed page goes out in writes of this size (with TCP_NODELAY: no write waits
# for the ACK of the one before); the buffer is heap while a page streams
_CHUNK = const(512)
_SWALLOW = const(512)
SWITCH = "switch"  # until_paired(): a press asked for the other pairing mode
CLOSED = "closed"  # until_paired(): the window closed


class Server:
    """Serves `ctx` (handlers.Context); ctx.accepted is the first valid POST /ap."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.conns = []  # [task, deadline or None once cancelled, last served] per connection
        self.listener = None
        self.loop = None  # the task of _accept()
        self.datagrams = None
        # one streamed page at a time: each holds a buffer and a file. A flag polled by
        # the waiters, not an asyncio.Lock: that would load asyncio's lock module (~0.3 KB)
        self.paging = False

    async def start(self, host, port, datagrams=None):
        """Listen on (host, port). datagrams: (a bound UDP socket, a function from a
        datagram to its reply or None), served by the same loop (the captive portal's
        DNS): a task and a poller fewer in the heap."""
        self.datagrams = datagrams  # first: stop() closes it whatever fails next
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(socket.getaddrinfo(host, port)[0][-1])
        sock.listen(_BACKLOG)
        sock.setblocking(False)
        self.listener = sock
        self.loop = asyncio.create_task(self._accept())

    async def until_paired(self, app, window_ms=0):
        """The accepted POST /ap (a dict), SWITCH on a press, or CLOSED when window_ms
        (0: none) has passed."""
        t0 = time.ticks_ms()
        while self.ctx.accepted is None:
            await asyncio.sleep_ms(200)
            if app.take_press():
                return SWITCH
            if window_ms and time.ticks_diff(time.ticks_ms(), t0) >= window_ms:
                return CLOSED
        await asyncio.sleep_ms(300)  # let the reply leave before the caller moves on
        return self.ctx.accepted

    async def stop(self):
        listener, self.listener = self.listener, None
        if listener:
            listener.close()  # and with it what waited in its backlog
        if self.datagrams:
            self.datagrams[0].close()
        if self.loop:
            self.loop.cancel()
        for conn in self.conns:
            conn[0].cancel()
        # let them end, the connections closing their sockets while the interface is still
        # up: a task not yet ended holds this module and what it served in the heap
        for _ in range(50):
            if not self.conns and (self.loop is None or self.loop.done()):
                break
            await asyncio.sleep_ms(10)

    async def _accept(self):
        # A polled loop rather than asyncio.start_server, which accepts whatever
        # arrives and gives each connection a task at once (extmod/asyncio/stream.py,
        # Server._serve). One loop also keeps every connection's deadline: a
        # wait_for() around each read would allocate a task per read.
        listener, datagrams = self.listener, self.datagrams
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        if datagrams:
            poller.register(datagrams[0], select.POLLIN)
        reaped = time.ticks_ms()
        while self.listener:
            for sock, _ in poller.ipoll(0):
                if sock is listener:
                    self._take(listener)
                elif datagrams:
                    _answer(sock, datagrams[1])
            now = time.ticks_ms()
            if time.ticks_diff(now, reaped) >= _REAP_MS:
                reaped = now
                for conn in self.conns:
                    if conn[1] is not None and time.ticks_diff(conn[1], now) <= 0:
                        conn[1] = None
                        conn[0].cancel()
            await asyncio.sleep_ms(_POLL_MS)

    def _take(self, listener):
        # what waits in the backlog is taken only into a free slot
        while self._room():
            try:
                sock, _ = listener.accept()
            except OSError:
                return  # none waiting (or it gave up while waiting)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            now = time.ticks_ms()
            # a deadline, not an idle timer: a client trickling bytes cannot hold a slot
            conn = [None, time.ticks_add(now, _REQUEST_MS), now]
            conn[0] = asyncio.create_task(self._serve(sock, conn))
            self.conns.append(conn)

    def _room(self):
        """A slot for the next connection: a free one, or one made by closing the
        least recently served connection that has been quiet for _QUIET_MS. Made
        room shows as free on a later poll, once the closed one has let go."""
        if len(self.conns) < _MAX_CONNECTIONS:
            return True
        now = time.ticks_ms()
        oldest = None
        for conn in self.conns:
            if conn[1] is not None and time.ticks_diff(now, conn[2]) >= _QUIET_MS and (
                    oldest is None or time.ticks_diff(conn[2], oldest[2]) < 0):
                oldest = conn
        if oldest:
            oldest[1] = oldest[2] = None  # its task sees the cancel and closes without a reply
            oldest[0].cancel()
        return False

    async def _serve(self, sock, conn):
        parser = http.Parser()
        continued = False
        try:
            while True:
                req = parser.next_request()
                if req is None:
                    if parser.wants_continue and not continued:
                        continued = True  # curl waits a second for this before it sends the body
                        await _write(sock, http.CONTINUE)
                    # read here, not in a coroutine of its own: a connection waits here
                    # most of its life, and every waiting frame is heap
                    await _Ready(sock)
                    data = sock.read(_READ)
                    if data is None:  # woken, but nothing to read after all
                        continue
                    if not data:
                        break
                    parser.feed(data)
                    data = None  # the parser has a copy
                    continue
                continued = False
                reply = handlers.handle(req, self.ctx)
                if req.method == "POST":
                    # the JSON parser a POST /ap brought in: out of the heap until the next
                    # one (it would stay there through the join and the save)
                    sys.modules.pop("jsonobj", None)
                if isinstance(reply.body, bytes):
                    keep = await _send(sock, req, reply)
                else:
                    while self.paging:
                        await asyncio.sleep_ms(_POLL_MS)
                    self.paging = True
                    try:
                        keep = await _send(sock, req, reply)
                    finally:
                        self.paging = False
                # what is done with is not kept while the connection waits for its next request
                req = reply = None
                if not keep:
                    break
                now = time.ticks_ms()
                conn[1], conn[2] = time.ticks_add(now, _REQUEST_MS), now
        except http.HTTPError as e:
            self._drop(conn)  # its slot is free at once
            await _refuse(sock, e.status, e.reason)
        except asyncio.CancelledError:
            # the deadline passed (or the server stops, or room was made for a
            # newcomer): a request cut short by its deadline gets a 408
            if self.listener and parser.pending() and conn[2] is not None:
                self._drop(conn)
                await _refuse(sock, 408, "timeout")
        except MemoryError:
            # drop this connection without a reply (that would allocate): keep the device
            parser = None
            gc.collect()
            print("http: out of memory")
        except OSError:
            pass  # the phone went away
        finally:
            self._drop(conn)
            sock.close()

    def _drop(self, conn):
        if conn in self.conns:
            self.conns.remove(conn)


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


# A socket's reads and writes as asyncio's Stream does them (extmod/asyncio/stream.py),
# waiting on asyncio's own poller, but without asyncio.StreamReader: that loads asyncio's
# stream module, ~0.9 KB of heap for its classes, more than the pairing world can spare.


class _Ready:
    """`await _Ready(sock)`: until sock is readable (writable with write=True)."""

    def __init__(self, sock, write=False):
        # queue the running task on the socket, as Stream does; asyncio.core's _io_queue
        # is looked up each time because a new event loop replaces it
        queue = sys.modules["asyncio.core"]._io_queue
        if write:
            queue.queue_write(sock)
        else:
            queue.queue_read(sock)

    def __iter__(self):  # what MicroPython's await runs: sleep until the poller wakes the task
        yield

    __await__ = __iter__  # what a type checker looks for


async def _write(sock, data):
    """All of data, waiting for room as needed (and so yielding at least once, as
    Stream.drain does: a loop of writes cannot starve the other tasks)."""
    mv = memoryview(data)
    off = 0
    while off < len(mv):
        await _Ready(sock, True)
        sent = sock.write(mv[off:])
        if sent:
            off += sent


async def _send(sock, req, reply):
    """Write the reply; False when the connection ends with it."""
    body = reply.body
    streamed = not isinstance(body, bytes)  # a page from flash: its length is known at the end
    keep = req.keep_alive and not streamed
    head = http.head(reply.status, None if streamed else len(body), keep, reply.content_type, reply.headers)
    try:
        if req.method == "HEAD":
            await _write(sock, head)
        elif not streamed:
            await _write(sock, head + body)  # one segment: two would meet the client's delayed ACK
        else:
            out = bytearray(head)
            for chunk in body:
                out.extend(chunk)
                if len(out) >= _CHUNK:
                    await _write(sock, out)
                    out = bytearray()
            await _write(sock, out)
    finally:
        if streamed:
            body.close()  # the page's file, if the client left halfway
    return keep


async def _refuse(sock, status, reason):
    # An error reply, then close. Closing with unread input makes the kernel send
    # RST, which can destroy the reply before the phone reads it: swallow a little
    # of what is in flight first (bounded: the slot is already free).
    try:
        await _write(sock, http.response(status, http.error_body(status, reason), False))
        for _ in range(8):  # up to 4 KB, 400 ms
            await asyncio.sleep_ms(50)
            if not sock.read(_SWALLOW):  # None: nothing came meanwhile; b"": closed
                break
    except OSError:
        pass
    sock.close()
