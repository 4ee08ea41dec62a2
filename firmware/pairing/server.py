# The pairing HTTP server: an asyncio driver around pairing.http and the handlers.
import asyncio
import gc
import time

from micropython import const

from pairing import handlers, http

MAX_CONNECTIONS = const(2)  # a phone uses one; each costs lwIP buffers and heap
REQUEST_MS = const(10000)  # a whole request (or the next one) must arrive within this
_READ = const(128)
_REAP_MS = const(500)


class Server:
    def __init__(self, settings):
        self.settings = settings
        self.pairing = None  # the accepted POST /ap, once there is one
        self.conns = []  # [task, deadline or None once cancelled] per connection
        self.listener = None

    async def start(self, host, port):
        self.listener = await asyncio.start_server(self._serve, host, port, MAX_CONNECTIONS)
        asyncio.create_task(self._reap())

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

    async def _serve(self, reader, writer):
        if len(self.conns) >= MAX_CONNECTIONS:
            await _refuse(reader, writer, 503, "busy")
            return
        # a deadline, not an idle timer: a client trickling bytes cannot hold a slot
        conn = [asyncio.current_task(), time.ticks_add(time.ticks_ms(), REQUEST_MS)]
        self.conns.append(conn)
        parser = http.Parser()
        try:
            while True:
                req = parser.next_request()
                if req is None:
                    data = await reader.read(_READ)
                    if not data:
                        break
                    parser.feed(data)
                    continue
                method, path, body, keep_alive = req
                status, body, pairing = handlers.handle(method, path, body, self.settings)
                await _send(writer, status, body, keep_alive)
                if pairing:
                    self.pairing = pairing
                if not keep_alive:
                    break
                conn[1] = time.ticks_add(time.ticks_ms(), REQUEST_MS)
        except http.HTTPError as e:
            await _refuse(reader, writer, e.status, e.reason)
        except asyncio.CancelledError:
            # the deadline passed (or the server stops): a half-sent request gets a 408
            if self.listener and parser.pending():
                await _refuse(reader, writer, 408, "timeout")
        except MemoryError:
            # drop this connection without a reply (that would allocate): keep the device
            parser = None
            gc.collect()
            print("http: out of memory")
        except OSError:
            pass  # the phone went away
        finally:
            self.conns.remove(conn)
            await _close(writer)


async def _send(writer, status, body, keep_alive):
    writer.write(http.response(status, body, keep_alive))
    await writer.drain()


async def _refuse(reader, writer, status, reason):
    # An error reply, then close. Closing with unread input makes the kernel send
    # RST, which can destroy the reply before the phone reads it: swallow what is
    # in flight first.
    try:
        await _send(writer, status, http.error_body(status, reason), False)
        for _ in range(16):
            if not await asyncio.wait_for_ms(reader.read(_READ), 50):
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
