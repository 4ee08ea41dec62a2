"""A fake board for the cloud tests: a CPython TLS (or plain TCP) client that speaks the
device protocol and checks every server frame byte for byte."""
import concurrent.futures
import json
import socket
import ssl
import threading

TOKEN = "0123456789abcdefghijklmnopqrstuvwxyz0123"  # 40 chars [0-9a-z], as the phone makes
BSSID = "18:fe:34:a1:b2:c3"
ROM = "v1.0.0t23701(a)"


def cloud_style(obj) -> bytes:
    return (json.dumps(obj, sort_keys=True) + "\n").encode()


class FakeDevice:
    def __init__(self, cloud, key, tls=True, hostname="localhost", timeout=5.0):
        self.key = key
        port = cloud.tls_port if tls else cloud.plain_port
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            ctx = ssl.create_default_context(cafile=str(cloud.ca_file))
            sock = ctx.wrap_socket(sock, server_hostname=hostname)
        self.sock = sock
        self.buf = b""
        self.nonce = 1000

    def write(self, data: bytes):
        self.sock.sendall(data)

    def send(self, obj):
        self.write((json.dumps(obj) + "\n").encode())

    def recv_chunk(self) -> bytes:
        """One recv(): with TLS, one record, i.e. what the server passed to one write."""
        assert not self.buf, "unread data before recv_chunk"
        return self.sock.recv(65536)

    def read_raw(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"closed by the cloud; unread: {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read(self) -> dict:
        raw = self.read_raw()
        obj = json.loads(raw)
        assert raw == cloud_style(obj), f"not json.dumps(sort_keys=True) style: {raw!r}"
        return obj

    def request(self, path, method="POST", body=None, key=None, nonce=None) -> dict:
        if nonce is None:
            self.nonce += 1
            nonce = self.nonce
        msg = {"nonce": nonce, "path": path, "method": method,
               "meta": {"Authorization": f"token {key or self.key}"}}
        if body is not None:
            msg["body"] = body
        self.send(msg)
        return self.read()

    def activate(self, token=TOKEN, **kw):
        body = {"encrypt_method": "PLAIN", "token": token, "bssid": BSSID, "rom_version": ROM}
        return self.request("/v1/device/activate/", "POST", body, **kw)

    def identify(self, **kw):
        return self.request("/v1/device/identify/", "GET", **kw)

    def login(self, token=TOKEN):
        assert self.activate(token)["status"] == 200
        assert self.identify()["status"] == 200
        return self

    def is_closed(self, timeout=3.0) -> bool:
        """True once the cloud closed the socket (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except socket.timeout:
            return False
        except (ConnectionError, ssl.SSLError, OSError):
            return True

    def answer(self, handler, count=1):
        """Answer `count` deliveries on a thread: handler(delivery) -> list of replies."""
        def run():
            for _ in range(count):
                for reply in handler(self.read()):
                    self.send(reply)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def close(self):
        self.sock.close()


def in_background(fn, *args, **kw) -> concurrent.futures.Future:
    """Run a blocking call (a REST request) while the test plays the device."""
    pool = concurrent.futures.ThreadPoolExecutor(1)
    future = pool.submit(fn, *args, **kw)
    pool.shutdown(wait=False)
    return future
