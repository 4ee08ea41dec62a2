# The pairing HTTP server: an asyncio driver around pairing.http and the handlers.
# A browser opens several connections at once and a slow or hostile client may hold
# one: when all slots are taken the least recently served connection (by its last
# answered request, or its accept) is closed to make room, never the newcomer
# (ESP-IDF httpd's lru_purge_enable). A client trickling a request is never served,
# so it goes first.
import asyncio
import gc
import time

from micropython import const

from pairing import handlers, http

MAX_CONNECTIONS = const(5)  # a browser's page load and a phone's exchange; each holds up to 1 KB of head
REQUEST_MS = const(10000)  # a whole request (or the next one) must arrive within this
_READ = const(128)
_REAP_MS = const(500)
_CHUNK = const(1460)  # a streamed page goes out in writes of about a TCP segment
_SWALLOW = const(512)
SWITCH = "switch"  # until_paired(): a press asked for the other pairing mode
CLOSED = "closed"  # until_paired(): the window closed


class Server:
    """Serves `ctx` (handlers.Context); ctx.accepted is the first valid POST /ap."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.conns = []  # [task, deadline or None once cancelled, last served] per connection
        self.listener = None

    async def start(self, host, port):
        self.listener = await asyncio.start_server(self._serve, host, port, 2)
        asyncio.create_task(self._reap())

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
            listener.close()
            await listener.wait_closed()
        for conn in self.conns:
            conn[0].cancel()
        # let them close their sockets while the interface is still up
        for _ in range(50):
            if not self.conns:
                break
            await asyncio.sleep_ms(10)

    async def _reap(self):
        # One timer for all connections: a wait_for() around every read would
        # allocate a task per read, and the ESP8266's heap fragments.
        while self.listener:
            await asyncio.sleep_ms(_REAP_MS)
            now = time.ticks_ms()
            for conn in self.conns:
                if conn[1] is not None and time.ticks_diff(conn[1], now) <= 0:
                    conn[1] = None
                    conn[0].cancel()

    def _make_room(self):
        oldest = None
        for conn in self.conns:
            if conn[1] is not None and (oldest is None or time.ticks_diff(conn[2], oldest[2]) < 0):
                oldest = conn
        if oldest:
            oldest[1] = oldest[2] = None  # its task sees the cancel and closes without a reply
            oldest[0].cancel()

    async def _serve(self, reader, writer):
        if len(self.conns) >= MAX_CONNECTIONS:
            self._make_room()
        # a deadline, not an idle timer: a client trickling bytes cannot hold a slot
        now = time.ticks_ms()
        conn = [asyncio.current_task(), time.ticks_add(now, REQUEST_MS), now]
        self.conns.append(conn)
        parser = http.Parser()
        continued = False
        try:
            while True:
                req = parser.next_request()
                if req is None:
                    if parser.wants_continue and not continued:
                        continued = True  # curl waits a second for this before it sends the body
                        writer.write(http.CONTINUE)
                        await writer.drain()
                    data = await reader.read(_READ)
                    if not data:
                        break
                    parser.feed(data)
                    continue
                continued = False
                if not await _send(writer, req, handlers.handle(req, self.ctx)):
                    break
                now = time.ticks_ms()
                conn[1], conn[2] = time.ticks_add(now, REQUEST_MS), now
        except http.HTTPError as e:
            self._drop(conn)  # its slot is free at once
            await _refuse(reader, writer, e.status, e.reason)
        except asyncio.CancelledError:
            # the deadline passed (or the server stops, or room was made for a
            # newcomer): a request cut short by its deadline gets a 408
            if self.listener and parser.pending() and conn[2] is not None:
                self._drop(conn)
                await _refuse(reader, writer, 408, "timeout")
        except MemoryError:
            # drop this connection without a reply (that would allocate): keep the device
            parser = None
            gc.collect()
            print("http: out of memory")
        except OSError:
            pass  # the phone went away
        finally:
            self._drop(conn)
            await _close(writer)

    def _drop(self, conn):
        if conn in self.conns:
            self.conns.remove(conn)


def readable(poller):
    """A socket registered with `poller` has something to read (no list per call)."""
    for _ in poller.ipoll(0):
        return True
    return False


async def _send(writer, req, reply):
    """Write the reply; False when the connection ends with it."""
    body = reply.body
    streamed = not isinstance(body, bytes)  # a page from flash: its length is known at the end
    keep = req.keep_alive and not streamed
    head = http.head(reply.status, None if streamed else len(body), keep, reply.content_type, reply.headers)
    try:
        if req.method == "HEAD":
            writer.write(head)
        elif not streamed:
            writer.write(head + body)  # one segment: two would meet the client's delayed ACK
        else:
            out = bytearray(head)
            for chunk in body:
                out.extend(chunk)
                if len(out) >= _CHUNK:
                    writer.write(out)
                    await writer.drain()
                    out = bytearray()
            writer.write(out)
    finally:
        if streamed:
            body.close()  # the page's file, if the client left halfway
    await writer.drain()
    return keep


async def _refuse(reader, writer, status, reason):
    # An error reply, then close. Closing with unread input makes the kernel send
    # RST, which can destroy the reply before the phone reads it: swallow a little
    # of what is in flight first (bounded: the slot is already free).
    try:
        writer.write(http.response(status, http.error_body(status, reason), False))
        await writer.drain()
        for _ in range(8):  # up to 4 KB, 400 ms
            if not await asyncio.wait_for_ms(reader.read(_SWALLOW), 50):
                break
    except (OSError, asyncio.TimeoutError):
        pass
    await _close(writer)


async def _close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass
