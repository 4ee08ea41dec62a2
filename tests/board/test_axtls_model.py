"""The ESP8266 model's `tls`: axTLS's contract, checked on the wire and on the heap."""
import re
import socket
import ssl
import threading

from esplink.cloud import certs


class Server:
    """A TLS (or raw TCP) server on loopback for one connection: records what it
    receives; `reply` is written once the client's first bytes arrive."""

    def __init__(self, tmp_path, tls=True, ciphers=None, reply=b"hello\n"):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(20)
        self.port = self.listener.getsockname()[1]
        self.ctx = None
        if tls:
            self.ctx = certs.device_context(certs.ensure(tmp_path / "certs"))
            if ciphers:
                self.ctx.set_ciphers(ciphers)
        self.reply, self.received, self.error = reply, b"", None
        self.version = self.cipher = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(5)
            if self.ctx:
                conn = self.ctx.wrap_socket(conn, server_side=True)
                self.version, self.cipher = conn.version(), conn.cipher()[0]
            self.received = conn.recv(4096)
            if self.reply:
                conn.sendall(self.reply)
            try:
                while True:
                    more = conn.recv(4096)
                    if not more:
                        break
                    if not self.reply:  # raw: keep all of it
                        self.received += more
            except OSError:
                pass
            conn.close()
        except (OSError, ssl.SSLError) as e:
            self.error = e

    def done(self):
        self.thread.join(10)
        self.listener.close()
        return self


CONNECTED = """
import gc, socket, time, tls, vboard
def connected(port):
    ai = socket.getaddrinfo("127.0.0.1", port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    s.connect(ai[-1])  # blocking: connected when it returns
    s.settimeout(5)
    return s
def used():
    gc.collect()
    return gc.mem_alloc() - vboard.hidden
"""


def test_what_axtls_has_and_has_not(run_script):
    log = run_script("""
import tls
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = 2
print("verify_mode", ctx.verify_mode)
print("has", [n for n in ("load_verify_locations", "set_ciphers", "load_cert_chain", "wrap_socket") if hasattr(ctx, n)])
print("CERT_REQUIRED", hasattr(tls, "CERT_REQUIRED"))
""").finish()
    assert "verify_mode 0" in log
    assert "has ['load_cert_chain', 'wrap_socket']" in log
    assert "CERT_REQUIRED False" in log


def test_a_blocking_handshake_then_data_and_axtls_memory_on_the_heap(run_script, tmp_path):
    server = Server(tmp_path)
    log = run_script(CONNECTED + f"""
s = connected({server.port})
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
before = used()
t = ctx.wrap_socket(s)
print("live", used() - before)
t.write(b"ping\\n")
t.setblocking(True)
print("read", t.read(6))
t.close()
print("closed", used() - before)
""").finish()
    server.done()
    assert server.error is None and server.received == b"ping\n"
    assert server.version == "TLSv1.2" and server.cipher in ("AES128-SHA", "AES128-SHA256", "AES256-SHA", "AES256-SHA256")
    assert "read b'hello\\n'" in log
    live = int(re.search(r"live (\d+)", log)[1])
    assert 8700 <= live <= 9800  # axTLS's +8.7 KB after the handshake, on the GC heap
    assert int(re.search(r"closed (-?\d+)", log)[1]) < 600


def test_a_write_before_the_handshake_ends_goes_out_in_cleartext(run_script, tmp_path):
    # do_handshake_on_connect=False: axTLS advances the handshake only in reads, and
    # ssl_write() sends whatever it is given as an application-data record
    server = Server(tmp_path, tls=False, reply=None)
    log = run_script(CONNECTED + f"""
s = connected({server.port})
t = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(s, do_handshake_on_connect=False)
t.write(b'{{"nonce": 1, "meta": {{"Authorization": "token SECRET"}}}}\\n')
time.sleep_ms(200)
""").finish()
    server.done()
    raw = server.received
    assert raw[0] == 0x16  # the ClientHello's record first
    hello = 5 + int.from_bytes(raw[3:5], "big")
    assert raw[hello:hello + 3] == b"\x17\x03\x03"  # then application data ...
    assert b'"Authorization": "token SECRET"' in raw[hello:]  # ... in the clear
    assert "board: axTLS wrote 56 B of application data before the handshake ended: a cleartext record" in log


def test_wrapping_a_socket_still_connecting_hangs_until_the_sdk_watchdog(run_script, tmp_path):
    # asyncio.open_connection(host, port, ctx): a non-blocking connect, then the wrap at once
    server = Server(tmp_path, reply=None)
    log = run_script(f"""
import os, sys
try:
    os.stat("bitten"); print("second boot"); sys.exit(0)
except OSError:
    open("bitten", "w").close()
import asyncio, tls
async def main():
    r, w = await asyncio.open_connection("127.0.0.1", {server.port}, tls.SSLContext(tls.PROTOCOL_TLS_CLIENT), "localhost")
    print("opened")
asyncio.run(main())
""").finish()
    server.done()
    assert "board: hung: axTLS resends its ClientHello forever on a socket still connecting" in log
    assert "board: software watchdog reset (hung:" in log and "second boot" in log and "opened" not in log


def test_a_record_over_5115_bytes_kills_the_connection(run_script, tmp_path):
    server = Server(tmp_path, reply=b"x" * 6000)  # one TLS record
    log = run_script(CONNECTED + f"""
s = connected({server.port})
t = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(s)
t.write(b"ping\\n")
try:
    print("read", len(t.read(100)))
except OSError as e:
    print("error", e.errno)
""").finish()
    server.done()
    assert "board: axTLS refused a 6" in log and "error -257" in log and "read" not in log


def test_a_server_without_static_rsa_is_refused(run_script, tmp_path):
    server = Server(tmp_path, ciphers="ECDHE+AESGCM")
    log = run_script(CONNECTED + f"""
s = connected({server.port})
try:
    tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(s)
    print("connected")
except OSError as e:
    print("refused", e.args)
""").finish()
    server.done()
    assert "refused (-256, 'CONN_LOST')" in log


def test_out_of_heap_axtls_crashes_the_board(run_script, tmp_path):
    # calloc's NULL is dereferenced (tls1.c:611): no MemoryError to catch, a reboot
    server = Server(tmp_path, reply=None)
    log = run_script(CONNECTED + f"""
import os, sys
try:
    os.stat("crashed"); print("second boot"); sys.exit(0)
except OSError:
    open("crashed", "w").close()
s = connected({server.port})
gc.collect()
filler = bytearray(gc.mem_free() - 6000)
try:
    tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(s)
except MemoryError:
    print("caught")
print("connected")
""").finish()
    server.done()
    assert "board: crash: axTLS out of heap" in log and "second boot" in log
    assert "caught" not in log and "connected" not in log.replace("second boot", "")
