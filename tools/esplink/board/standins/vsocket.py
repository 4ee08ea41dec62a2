# Stand-in for the chip's `socket` (runs on the VM): the VM's own sockets, behind the
# board's DNS (its own table, loopback only: nothing but 127.0.0.1 is ever reached)
# and, on the ESP8266, UDP sockets that keep one pending datagram.
import io
import select
import time

import vboard
from socket import *  # noqa: F401,F403 - the constants and the rest, as the chip has them
from socket import getaddrinfo as _getaddrinfo
from socket import socket as _socket

_ESP8266 = vboard.CHIP == "esp8266"
# Both chips' socket modules have TCP_NODELAY (extmod/modlwip.c:1859-1860, lwIP's own
# flag value; ports/esp32/modsocket.c:1004,1012); the unix port's has not. Here: the
# values this machine's kernel takes, so setsockopt() reaches the VM's socket as it
# reaches lwIP on a chip.
IPPROTO_TCP = 6
TCP_NODELAY = 1
# A DNS miss: lwIP's callback status on the ESP8266 (extmod/modlwip.c:1747), EAI_FAIL
# from lwip_getaddrinfo on the ESP32 (ports/esp32/modsocket.c:253-255).
_MISS = -2 if _ESP8266 else -202
# where a refused destination goes: a port the host holds and never answers on
_SINK = ("127.0.0.1", vboard.CONFIG["sink_port"])


def _literal(host):
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def getaddrinfo(host, port, *rest):
    """The board's resolver. A name blocks for the configured resolver delay (lwIP's
    lookup blocks the caller: modlwip.c:1785-1800, and on the ESP32 modsocket.c:236-250)
    and resolves only through the board's table; an address other than 127.0.0.1 is
    refused with an event line and goes nowhere."""
    if not _literal(host):
        delay = vboard.CONFIG["dns_delay_ms"]
        if delay:
            time.sleep_ms(delay)
        addr = vboard.CONFIG["hosts"].get(host.lower())
        if addr is None:
            raise OSError(_MISS)
        host = addr
    if host != vboard.LOOPBACK:
        vboard.refused(host, port)
        host, port = _SINK
    return _getaddrinfo(host, port, *rest)


class _Wrapped(io.IOBase):
    """A VM socket behind a chip's behaviour. A wrapper, not a subclass: select.poll()
    does not see a subclass's file descriptor; here ioctl() hands it over."""

    def __init__(self, af, kind, proto, sock=None):
        self.sock = sock or _socket(af, kind, proto)
        self.timeout = None

    def settimeout(self, t):
        self.timeout = t
        self.sock.settimeout(t)

    def setblocking(self, flag):
        self.settimeout(None if flag else 0)

    def bind(self, addr):
        self.sock.bind(addr)

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        self.sock.close()

    def ioctl(self, req, arg):
        if req == 10:  # MP_STREAM_GET_FILENO: poll() waits on the descriptor
            return self.sock.fileno()
        if req == 4:  # MP_STREAM_CLOSE
            self.sock.close()
        return 0


class _OneDatagram(_Wrapped):
    """The ESP8266's UDP socket holds one datagram until it is read; what arrives
    meanwhile is dropped ("No room in the inn", extmod/modlwip.c:441; four from
    v1.26). The VM's kernel queues them: a read takes the oldest and drops the ones
    that came while it waited."""

    def recv(self, n):
        data = self.sock.recv(n)
        self._drop()
        return data

    def recvfrom(self, n):
        got = self.sock.recvfrom(n)
        self._drop()
        return got

    def _drop(self):
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(1)
                vboard.udp_dropped += 1
        except OSError:
            pass
        finally:
            self.sock.settimeout(self.timeout)

    def sendto(self, data, addr):
        return self.sock.sendto(data, addr)


class _Stream(_Wrapped):
    """The ESP8266's TCP socket: lwIP completes a connect only in the SDK's task, which
    runs when the program yields to the event loop (modlwip.c:1557 withholds POLLOUT
    meanwhile), so a socket is still connecting right after a non-blocking connect()
    and axTLS cannot be wrapped around it (vtls). Here: until the first poll()."""

    in_flight = False  # a non-blocking connect no poll() has seen yet

    def connecting(self):
        return self.in_flight

    def connect(self, addr):
        self.in_flight = self.timeout == 0
        self.sock.connect(addr)

    def readinto(self, buf):
        return self.sock.readinto(buf)

    def read(self, n=-1):
        return self.sock.read(n) if n >= 0 else self.sock.read()

    def readline(self):
        return self.sock.readline()

    def write(self, buf):
        return self.sock.write(buf)

    def recv(self, n):
        return self.sock.recv(n)

    def send(self, buf):
        return self.sock.send(buf)

    def setsockopt(self, *args):
        self.sock.setsockopt(*args)

    def listen(self, backlog=2):
        self.sock.listen(backlog)

    def accept(self):
        # An accepted socket is heap on the chip: lwIP's socket object, 48 B on the
        # ESP8266 (extmod/modlwip.c:289-321, lwip_socket_obj_t, made by
        # lwip_socket_accept), where the VM's is 16 B. Wrapped, it costs this model at
        # least as much.
        sock, addr = self.sock.accept()
        return _Stream(AF_INET, SOCK_STREAM, 0, sock), addr  # noqa: F405

    def ioctl(self, req, arg):
        if req == 10 and self.in_flight:
            return -1  # no descriptor: while the connect is in flight, poll() asks here ...
        if req == 3:  # ... (MP_STREAM_POLL): the first poll sees it connecting
            if self.in_flight:
                self.in_flight = False
                arg &= ~select.POLLOUT
            if arg:
                p = select.poll()
                p.register(self.sock, arg)
                for _, ready in p.ipoll(0):
                    return ready
            return 0
        return super().ioctl(req, arg)


def socket(af=AF_INET, kind=SOCK_STREAM, proto=0):  # noqa: F405
    if not _ESP8266:
        return _socket(af, kind, proto)
    return (_OneDatagram if kind == SOCK_DGRAM else _Stream)(af, kind, proto)  # noqa: F405
