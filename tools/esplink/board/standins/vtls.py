# Stand-in for the chip's `tls` (runs on the VM), over the VM's own (Debian's mbedTLS),
# keeping each chip's contract (MicroPython v1.25.0 sources cited):
#
# esp8266 - axTLS as ports/esp8266 builds it (extmod/modtls_axtls.c, lib/axtls):
#   static-RSA TLS 1.2 suites only (tls1.c:65-67, CONFIG_SSL_PROT_LOW); CERT_NONE only,
#   no load_verify_locations, no CERT_REQUIRED (modtls_axtls.c:166-187, 212-215);
#   records over 5115 B kill the connection (tls1.c:1352, RT_MAX_PLAIN_LENGTH=1024 +
#   RT_EXTRA=4096 in ports/esp8266/Makefile:51); its memory on the GC heap
#   (ports/esp8266/posix_helpers.c:35-56) and, out of heap, a crash: calloc's NULL is
#   dereferenced (tls1.c:611); a wrap of a socket still connecting spins forever in
#   send_raw_packet (tls1.c:1044-1100: lwIP says EAGAIN, modlwip.c:703-716) until the
#   SDK's watchdog resets the chip; with do_handshake_on_connect=False the handshake
#   advances only in reads, and a write before it ends goes out as a cleartext record
#   (ssl_write does not check the handshake state).
# esp32 - mbedTLS, as on the VM; certificate dates are checked against the board's
#   clock, which starts at 2000-01-01 (ports/esp32/main.c:90-97) until it is set.
import gc
import io

import tls as _tls  # the VM's own: the runner imports this before it puts us in its place
import vboard
import vmachine

PROTOCOL_TLS_CLIENT = 0
PROTOCOL_TLS_SERVER = 1
CERT_NONE = 0
_ESP8266 = vboard.CHIP == "esp8266"


# ---- esp8266: axTLS

# The suites axTLS offers (CONFIG_SSL_PROT_LOW), by mbedTLS's names.
_AXTLS_SUITES = ("TLS-RSA-WITH-AES-128-CBC-SHA", "TLS-RSA-WITH-AES-128-CBC-SHA256",
                 "TLS-RSA-WITH-AES-256-CBC-SHA", "TLS-RSA-WITH-AES-256-CBC-SHA256")
_MAX_RECORD = 1024 + 4096 - 5  # RT_MAX_PLAIN_LENGTH + RT_EXTRA - BM_RECORD_OFFSET
# axTLS's allocations for one client connection, in bytes. The totals are measured on
# a unix build with the ESP8266's axTLS settings (+11.25 KB at the handshake peak,
# +8.7 KB live after it); the split follows its structs: SSL_CTX with its default key,
# SSL (the 5120 B record buffer inside it: the block that fragmentation fails),
# DISPOSABLE_CTX (handshake digests), the server's X509/RSA context, the bigint
# temporaries of the RSA key transport, the two AES contexts.
_LIVE, _TRANSIENT = 0, 1
_BLOCKS = ((1100, _LIVE), (5440, _LIVE), (640, _TRANSIENT), (1800, _LIVE), (1980, _TRANSIENT), (560, _LIVE))
_OOM = "axTLS out of heap: calloc returned NULL and it was dereferenced (lib/axtls/ssl/tls1.c:611)"


def _hide(before):
    # what the VM's own TLS objects hold: a chip's axTLS objects are a few bytes
    gc.collect()
    n = gc.mem_alloc() - before
    vboard.hidden += n
    return n


class _Wire(io.IOBase):
    """The TCP socket under the VM's TLS engine: every record header the server sends
    passes here, so the model knows when the handshake ended and what axTLS refuses.
    Nothing here raises: an exception would unwind through mbedTLS's C code and leave
    it broken; a socket error reads as the end of the stream instead."""

    def __init__(self, sock):
        self.sock = sock
        self.dead = False
        self.head = bytearray(5)
        self.have = 0  # header bytes held
        self.left = 0  # body bytes of the current record still to come
        self.ccs = False  # the server's ChangeCipherSpec has passed
        self.done = False  # ... and its Finished: the handshake is over
        self.eagain = False  # a read found nothing on a non-blocking socket
        self.overflow = 0  # the size of a record axTLS refused, once there is one

    def readinto(self, buf):
        if self.dead:
            return 0
        try:
            n = self.sock.readinto(buf)
        except OSError:
            return 0  # a timeout or a reset: axTLS calls it SSL_ERROR_CONN_LOST
        if n is None:
            self.eagain = True
        elif n:
            self._records(buf, n)
        return n

    def _records(self, buf, n):
        i = 0
        while i < n:
            if self.left:
                step = min(self.left, n - i)
                self.left -= step
                i += step
                if not self.left:
                    self._ended(self.head[0])
                continue
            self.head[self.have] = buf[i]
            self.have += 1
            i += 1
            if self.have == 5:
                self.have = 0
                self.left = self.head[3] << 8 | self.head[4]
                if self.left > _MAX_RECORD and not self.overflow:
                    self.overflow = self.left
                if not self.left:
                    self._ended(self.head[0])

    def _ended(self, kind):
        if kind == 20:
            self.ccs = True
        elif kind == 22 and self.ccs:
            self.done = True

    def write(self, buf):
        if not self.dead:
            try:
                n = self.sock.write(buf)
            except OSError:
                self.dead = True
            else:
                if n is None and self.done:
                    # a full send buffer: axTLS retries in a loop that never yields
                    # (tls1.c:1060-1077) and lwIP frees buffer only in the event loop
                    vboard.hang("axTLS resends a record forever on a full send buffer (lib/axtls/ssl/tls1.c:1060-1077)")
                return n
        return len(buf)  # gone: the next read says so

    def setblocking(self, flag):
        self.sock.setblocking(flag)

    def ioctl(self, req, arg):
        if req == 10:  # MP_STREAM_GET_FILENO: poll waits on the TCP socket, as axTLS's does
            return self.sock.fileno()
        if req == 4:  # MP_STREAM_CLOSE
            self.sock.close()
            return 0
        return self.sock.ioctl(req, arg) if hasattr(self.sock, "ioctl") else 0


class _AxSocket(io.IOBase):
    def __init__(self, sock, server_hostname, handshake):
        if getattr(sock, "connecting", bool)():
            vboard.hang("axTLS resends its ClientHello forever on a socket still connecting "
                        "(lib/axtls/ssl/tls1.c:1044-1100, extmod/modlwip.c:703-716)")
        timeout = getattr(sock, "timeout", None)
        if handshake and timeout == 0:
            # a non-blocking socket: the ClientHello goes, the first read gets SSL_EAGAIN
            # and the wrap raises it (modtls_axtls.c:280-291)
            raise OSError(11)
        self.real = self.mem = None
        try:
            self.mem = [bytearray(n) for n, _ in _BLOCKS]
        except MemoryError:
            vboard.crash(_OOM)
        ctx = _AxContext.real()
        gc.collect()
        before = gc.mem_alloc()
        self.wire = wire = _Wire(sock)
        try:
            self.real = ctx.wrap_socket(wire, server_hostname=server_hostname, do_handshake_on_connect=handshake)
            if not handshake:
                # axTLS sends its ClientHello at once (SSL_CONNECT_IN_PARTS); the VM's
                # engine waits for the first read or write: give it that read, which
                # finds nothing since the server waits for the hello
                self.real.setblocking(False)
                self.real.readinto(bytearray(1))
        except (OSError, ValueError):
            pass
        finally:
            self.hidden = _hide(before)
        if self.real is None or wire.overflow:  # axTLS's handshake refuses a record over 5 KB too
            self.close()
            raise OSError(-256, "CONN_LOST")  # all axTLS says of a handshake that failed
        if handshake:
            vboard.sample_peak()  # every block is held now: axTLS's peak
            self._ended()
        else:
            self.real.setblocking(True)
            sock.settimeout(timeout)  # the caller's, as the chip leaves it

    def _ended(self):
        self.wire.done = True
        cipher, version = self.real.cipher()
        if version != "TLSv1.2" or cipher not in _AXTLS_SUITES:
            self.close()
            raise OSError(-266, "NO_CIPHER")  # axTLS offers nothing else
        for i in range(len(_BLOCKS) - 1, -1, -1):
            if _BLOCKS[i][1] == _TRANSIENT:
                self.mem.pop(i)

    def readinto(self, buf):
        self._overflow()
        n = self.real.readinto(buf)
        self._overflow()
        if len(self.mem) == len(_BLOCKS) and self.wire.done:
            self._ended()
        return n

    def _overflow(self):
        if self.wire.overflow:
            print("board: axTLS refused a %d B record (over %d): connection lost" % (self.wire.overflow, _MAX_RECORD))
            raise OSError(-257)  # SSL_ERROR_RECORD_OVERFLOW

    def read(self, n=-1):
        buf = bytearray(n if n > 0 else 1024)
        got = self.readinto(buf)
        return got if got is None else bytes(buf[:got])

    def write(self, buf):
        if not self.wire.done:
            # ssl_write() before the handshake ended: the bytes go out as they are
            print("board: axTLS wrote %d B of application data before the handshake ended: "
                  "a cleartext record (lib/axtls/ssl/tls1.c ssl_write)" % len(buf))
            n = len(buf)
            self.wire.sock.write(bytes((23, 3, 3, n >> 8, n & 255)) + bytes(buf))
            return n
        return self.real.write(buf)

    def setblocking(self, flag):
        self.real.setblocking(flag)  # and, through the wire, the TCP socket

    def ioctl(self, req, arg):
        if req == 10:  # poll waits on the TCP socket: what axTLS decrypted already is invisible to it
            return self.wire.sock.fileno()
        if req == 4:
            self.close()
        return 0

    def close(self):
        if self.mem is not None:
            if self.real is not None:
                self.real.close()
            self.real = self.mem = None
            vboard.hidden -= self.hidden


class _AxContext:
    """The axTLS SSLContext: verify_mode reads CERT_NONE whatever is set; no
    load_verify_locations, no set_ciphers."""

    _real = None

    @classmethod
    def real(cls):
        # one VM context for the board: the chip's holds no state worth modelling
        if cls._real is None:
            gc.collect()
            before = gc.mem_alloc()
            ctx = _tls.SSLContext(_tls.PROTOCOL_TLS_CLIENT)
            ctx.verify_mode = _tls.CERT_NONE
            ctx.set_ciphers(list(_AXTLS_SUITES))
            cls._real = ctx
            _hide(before)
        return cls._real

    def __init__(self, protocol):
        self.key = self.cert = None

    @property
    def verify_mode(self):
        return CERT_NONE

    @verify_mode.setter
    def verify_mode(self, mode):
        pass  # modtls_axtls.c:170-176: nothing is stored

    def load_cert_chain(self, cert, key):
        self.cert, self.key = cert, key

    def wrap_socket(self, sock, server_side=False, do_handshake_on_connect=True, server_hostname=None):
        if server_side:
            raise NotImplementedError("the model has no axTLS server side")
        return _AxSocket(sock, server_hostname, do_handshake_on_connect)


# ---- esp32: mbedTLS, with the board's clock


def _der_len(der, i):
    n = der[i + 1]
    if n < 128:
        return i + 2, n
    k = n & 127
    return i + 2 + k, int.from_bytes(bytes(der[i + 2:i + 2 + k]), "big")


def _der_skip(der, i):
    start, n = _der_len(der, i)
    return start + n


def _der_time(der, i):
    start, n = _der_len(der, i)
    s = bytes(der[start:start + n]).decode()
    if der[i] == 0x17:  # UTCTime YYMMDDHHMMSSZ
        y = int(s[:2])
        s = ("20" if y < 50 else "19") + s
    days = vmachine._days(int(s[:4]), int(s[4:6]), int(s[6:8]))
    return days * 86400 + int(s[8:10]) * 3600 + int(s[10:12]) * 60 + int(s[12:14]), start + n


def _check_dates(cert, depth):
    # Certificate { tbsCertificate { [0] version, serial, signature, issuer, validity
    # { notBefore, notAfter } ... } ... }: mbedTLS on the chip compares these with its
    # clock; the VM's compares them with the host's, so the board's is checked here.
    i = _der_len(cert, 0)[0]
    i = _der_len(cert, i)[0]
    if cert[i] == 0xA0:
        i = _der_skip(cert, i)
    for _ in range(3):
        i = _der_skip(cert, i)
    i = _der_len(cert, i)[0]
    not_before, i = _der_time(cert, i)
    not_after, _ = _der_time(cert, i)
    now = vmachine.clock()
    if now < not_before or now > not_after:
        return -0x2700  # MBEDTLS_ERR_X509_CERT_VERIFY_FAILED
    return 0


def _esp32_context(protocol):
    ctx = _tls.SSLContext(protocol)
    ctx.verify_callback = _check_dates
    return ctx


if _ESP8266:
    SSLContext = _AxContext
else:
    SSLContext = _esp32_context
    CERT_OPTIONAL = _tls.CERT_OPTIONAL
    CERT_REQUIRED = _tls.CERT_REQUIRED
    MBEDTLS_VERSION = _tls.MBEDTLS_VERSION
