# The pairing HTTP server: an asyncio driver around pairing.http and the handlers.
import asyncio
import gc
import time

from micropython import const

from pairing import handlers, http

MAX_CONNECTIONS = const(2)  # a phone uses one; each costs lwIP buffers and heap
REQUEST_MS = const(10000)  # a whole request (or the next one) must arrive within this
_READ = const(128)


class Server:
    def __init__(self, settings):
        self.settings = settings
        self.pairing = None  # the accepted POST /ap, once there is one
        self.streams = []
        self.listener = None

    async def start(self, host, port):
        self.listener = await asyncio.start_server(self._serve, host, port, MAX_CONNECTIONS)

    async def stop(self):
        if self.listener:
            self.listener.close()
            await self.listener.wait_closed()
            self.listener = None
        for stream in self.streams:
            stream.close()

    async def _serve(self, reader, writer):
        if len(self.streams) >= MAX_CONNECTIONS:
            try:
                await _send(writer, 503, http.error_body(503, "busy"), False)
                await _discard(reader)
            except OSError:
                pass
            await _close(writer)
            return
        self.streams.append(writer)
        parser = http.Parser()
        # a deadline, not an idle timer: a client trickling bytes cannot hold a slot
        deadline = time.ticks_add(time.ticks_ms(), REQUEST_MS)
        try:
            while True:
                try:
                    req = parser.next_request()
                except http.HTTPError as e:
                    await _send(writer, e.status, http.error_body(e.status, e.reason), False)
                    await _discard(reader)
                    break
                if req is None:
                    try:
                        left = time.ticks_diff(deadline, time.ticks_ms())
                        if left <= 0:
                            raise asyncio.TimeoutError
                        data = await asyncio.wait_for_ms(reader.read(_READ), left)
                    except asyncio.TimeoutError:
                        if parser.pending():
                            await _send(writer, 408, http.error_body(408, "timeout"), False)
                        break
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
                deadline = time.ticks_add(time.ticks_ms(), REQUEST_MS)
        except OSError:
            pass  # the phone went away
        except MemoryError:
            # drop this connection, keep the device: the others may finish
            parser = None
            gc.collect()
            print("http: out of memory")
            try:
                await _send(writer, 503, http.error_body(503, "busy"), False)
            except OSError:
                pass
        finally:
            self.streams.remove(writer)
            await _close(writer)


async def _send(writer, status, body, keep_alive):
    writer.write(http.response(status, body, keep_alive))
    await writer.drain()


async def _discard(reader):
    # Closing with unread input makes the kernel send RST, which can destroy the
    # error reply before the phone reads it: swallow what is in flight first.
    for _ in range(16):
        try:
            if not await asyncio.wait_for_ms(reader.read(_READ), 50):
                return
        except asyncio.TimeoutError:
            return


async def _close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass
