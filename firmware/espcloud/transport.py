# The cloud link's transport: DNS, TCP, TLS, and the clock that TLS verification
# needs. Whatever the port's TLS, no application byte leaves before the handshake
# has ended.
import asyncio
import gc
import os
import select
import socket
import time
from errno import ECONNREFUSED, EINPROGRESS, ETIMEDOUT

from micropython import const

_CONNECT_MS = const(10000)
_POLL_MS = const(20)
_HANDSHAKE_READ_S = const(5)  # each read of the ESP8266's blocking handshake
_WRITE_MS = const(15000)  # a write on the ESP32, the TLS handshake inside the first
_AXTLS_WRITE_S = const(5)  # a write on the ESP8266
# axTLS allocates ~11.5 KB per connection from the GC heap, 5.4 KB of it in one block
# (the SSL struct with its record buffer): held contiguous between connections
_AXTLS_RESERVE = const(12288)


class Transport:
    def __init__(self, s):
        self.s = s
        self.ctx = None
        self.verify = False  # the server's certificate is checked against ca.der/ca.pem
        self.blocking = False  # the handshake must block (axTLS)
        self.clock_set = False
        self.reserve = None
        if s["tls"]:
            self._context()
            self._hold()  # now, while the heap is young

    def _hold(self):
        # On the ESP8266 a reconnect found 9.8 KB free in one piece after a session,
        # too little for axTLS, whose failed calloc is a crash, not a MemoryError.
        # So its room is kept as one block and given back just before the handshake.
        if self.blocking and self.reserve is None:
            gc.collect()
            try:
                self.reserve = bytearray(_AXTLS_RESERVE)
            except MemoryError:
                pass

    async def close(self, stream):
        await stream.wait_closed()  # MicroPython's close() alone keeps the socket
        self._hold()

    async def open(self):
        """A stream to the cloud, connected, TLS (if on) complete or in mbedTLS's hands."""
        s = self.s
        host = s["server"]
        ctx = self._context() if s["tls"] else None
        if self.verify and not self.clock_set:
            self._set_clock()
        # blocks until lwIP's resolver answers or gives up (modlwip.c:1785-1800)
        ai = socket.getaddrinfo(host, s["port"], 0, socket.SOCK_STREAM)[0]
        sock = socket.socket(ai[0], socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            try:
                sock.connect(ai[-1])
            except OSError as e:
                if e.errno != EINPROGRESS:
                    raise
            await _connected(sock)
            self.tcp = sock  # the TCP socket under axTLS, for bounded writes
            if ctx:
                sock = self._wrap(ctx, sock, host)
        except BaseException:
            sock.close()
            self._hold()
            raise
        self.sock = sock  # what the stream reads: TLS or TCP
        return asyncio.StreamReader(sock)

    async def send(self, stream, data):
        if not self.blocking:
            stream.write(data)
            await asyncio.wait_for_ms(stream.drain(), _WRITE_MS)
            return
        # axTLS retries a write that gets EAGAIN in a loop that never yields
        # (tls1.c:1060-1077), and on the ESP8266 lwIP frees send buffer only in the
        # event loop: so write with the TCP socket blocking, which waits in the
        # port's poll hook and gives up with ETIMEDOUT (axTLS: CONN_LOST)
        self.tcp.settimeout(_AXTLS_WRITE_S)
        try:
            if self.sock.write(data) != len(data):
                raise OSError(ETIMEDOUT)
        finally:
            self.tcp.setblocking(False)

    def read_now(self, buf):
        """Bytes the TLS layer has already decrypted, without waiting: axTLS's poll()
        looks at the TCP socket only (modtls_axtls.c:382-400), so what is left of a
        record larger than `buf` would wait for the next packet. None when empty."""
        return self.sock.readinto(buf)

    def _wrap(self, ctx, sock, host):
        if not self.blocking:
            # mbedTLS: the handshake runs inside the first reads and writes, and
            # mbedtls_ssl_write() finishes it before it sends any application byte
            return ctx.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
        # axTLS has no non-blocking handshake (micropython#7473): it advances only in
        # reads, and ssl_write() does not wait for its end, so a first frame written
        # early would leave in cleartext. On a still-connecting socket it spins.
        # So: connected first (above), then the whole handshake here, each read
        # bounded; after it, a non-blocking stream.
        sock.settimeout(_HANDSHAKE_READ_S)
        self.reserve = None
        gc.collect()
        # No SNI: axTLS cannot verify a name anyway, and a ClientHello without one is
        # how the cloud knows to offer the static-RSA suites axTLS needs (certs.py)
        sock = ctx.wrap_socket(sock)
        sock.setblocking(False)
        return sock

    def _context(self):
        if self.ctx is None:
            import tls

            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = tls.CERT_NONE
            # axTLS (the ESP8266) has neither load_verify_locations nor CERT_REQUIRED
            # (modtls_axtls.c) nor a non-blocking handshake; mbedTLS (the ESP32) has all
            load_ca = getattr(ctx, "load_verify_locations", None)
            self.blocking = load_ca is None
            if load_ca:
                ca = _read_ca()
                if ca:
                    ctx.verify_mode = getattr(tls, "CERT_REQUIRED")
                    load_ca(ca)
                    self.verify = True
            elif _exists("ca.der") or _exists("ca.pem"):
                print("cloud: this port cannot verify the server; CA ignored")
            self.ctx = ctx
        return self.ctx

    def _set_clock(self):
        # mbedTLS checks certificate dates against the board's clock, which starts at
        # 2000-01-01 (ports/esp32/main.c:90-97): a real CA's certificates fail until it
        # is set. ntptime is frozen into both ports' firmware.
        server = self.s["ntp_server"]
        try:
            import ntptime

            ntptime.host = server
            ntptime.settime()  # blocks: the lookup, then at most ntptime.timeout (1 s)
        except (ImportError, OSError, ValueError, IndexError, OverflowError) as e:
            print("clock: not set (%s: %r); certificates are checked as if it were 2000-01-01;"
                  " trying again before the next connection" % (server, e))
            return
        self.clock_set = True
        print("clock: set from", server)


async def _connected(sock):
    """Until the non-blocking connect has ended (bounded); raises if it failed."""
    poller = select.poll()
    poller.register(sock, select.POLLOUT)
    t0 = time.ticks_ms()
    while True:
        for _, event in poller.ipoll(0):
            if event & (select.POLLERR | select.POLLHUP):
                raise OSError(ECONNREFUSED)  # refused, reset or aborted: it did not connect
            return
        if time.ticks_diff(time.ticks_ms(), t0) >= _CONNECT_MS:
            raise OSError(ETIMEDOUT)
        await asyncio.sleep_ms(_POLL_MS)


def _exists(name):
    try:
        os.stat(name)
        return True
    except OSError:
        return False


def _read_ca():
    for name in ("ca.der", "ca.pem"):
        try:
            with open(name, "rb") as f:
                return f.read()
        except OSError:
            pass
    return None
