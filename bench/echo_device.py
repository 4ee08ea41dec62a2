# The floor for bench/cloud.py: the cheapest device that can speak to the cloud,
# run on the same MicroPython VM as the firmware. One TLS socket (CERT_REQUIRED,
# the cloud's CA in DER), one activate and one identify frame (the bytes
# firmware/espcloud/proto.py sends), then every delivery is answered with its nonce,
# found with bytes operations: no json, no asyncio, no logging.
#
#     micropython -X heapsize=64k echo_device.py HOST PORT CA_DER DEVICE_KEY TOKEN [fd|tls]
#
# It waits for input in poll() on the TCP socket's file descriptor ("fd", the floor).
# "tls" polls the TLS socket object instead, as asyncio's streams do: that object has
# no file descriptor, so the unix port's poll() checks it every
# MICROPY_PY_SELECT_IOCTL_CALL_PERIOD_MS (1 ms) -- a VM cost, shown separately.
import gc
import select
import socket
import sys
import tls

host, port, ca_file, key, token = sys.argv[1:6]
port = int(port)
wait_on_tls = sys.argv[6:7] == ["tls"]


def request(n, method, path, body=""):
    return ('{"nonce": %d, "path": "%s", "method": "%s", %s"meta": {"Authorization": "token %s"}}\n'
            % (n, path, method, body, key)).encode()


gc.collect()
before_tls = gc.mem_alloc()
with open(ca_file, "rb") as f:
    ca = f.read()
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
ctx.load_verify_locations(ca)
raw = socket.socket()
raw.connect(socket.getaddrinfo(host, port)[0][-1])
s = ctx.wrap_socket(raw, server_hostname=host)
gc.collect()
tls_heap = gc.mem_alloc() - before_tls  # what TLS (context, CA, socket) holds on the VM's heap
# A blocking stream read waits to fill the whole buffer: read non-blocking until
# TLS has nothing more for us, then wait in poll() for the next record.
s.setblocking(False)
waiting_on = s if wait_on_tls else raw
poller = select.poll()
poller.register(waiting_on, select.POLLIN)


def send(data):
    data = memoryview(data)
    while data:
        n = s.write(data)
        if n is None:  # TLS wants the socket writable first
            poller.modify(waiting_on, select.POLLOUT)
            poller.poll()
            poller.modify(waiting_on, select.POLLIN)
        else:
            data = data[n:]


buf = bytearray(2048)
mv = memoryview(buf)
held = 0


def lines():
    """Yield each complete line (a memoryview into buf) as it arrives."""
    global held
    while True:
        n = s.readinto(mv[held:])
        if n is None:
            poller.poll()
            continue
        if not n:
            print("echo: closed by the server")
            sys.exit(1)
        held += n
        start = 0
        while True:
            nl = buf.find(b"\n", start, held)
            if nl < 0:
                break
            yield start, nl
            start = nl + 1
        if start:
            mv[:held - start] = mv[start:held]
            held -= start


body = '"body": {"encrypt_method": "PLAIN", "token": "%s", "bssid": "18:fe:34:00:00:01", "rom_version": "echo"}, ' % token
send(request(1, "POST", "/v1/device/activate/", body))
frames = lines()
start, end = next(frames)
if buf.find(b'"status": 200', start, end) < 0:
    print("echo: activate refused", bytes(mv[start:end]))
    sys.exit(1)
send(request(2, "GET", "/v1/device/identify/"))
start, end = next(frames)
if buf.find(b'"status": 200', start, end) < 0:
    print("echo: identify refused", bytes(mv[start:end]))
    sys.exit(1)
print("echo: identified; TLS holds", tls_heap, "B of the heap")

NONCE = b'"nonce": '
for start, end in frames:
    i = buf.find(NONCE, start, end)
    if i < 0:
        continue
    i += len(NONCE)
    j = i
    while 48 <= buf[j] <= 57:
        j += 1
    send(b'{"status": 200, "nonce": ' + mv[i:j] + b', "deliver_to_device": true}\n')
