"""The board's network on the model: its own DNS (loopback only), the ESP8266's UDP
sockets that keep one datagram, and the ESP32 station's quirks."""
import re
import socket

import pytest


@pytest.mark.parametrize("chip, miss", [("esp8266", -2), ("esp32", -202)])
def test_names_resolve_through_the_board_table_only(run_script, chip, miss):
    log = run_script("""
import socket
print("known", socket.getaddrinfo("Cloud.Test", 8443)[0][-1] == socket.getaddrinfo("127.0.0.1", 8443)[0][-1])
try:
    socket.getaddrinfo("iot.espressif.cn", 8443)
except OSError as e:
    print("miss", e.errno)
""", chip=chip, hosts={"cloud.test": "127.0.0.1"}).finish()
    assert "known True" in log
    assert f"miss {miss}" in log


def test_any_other_address_is_refused_and_goes_nowhere(run_script):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as watch:
        watch.bind(("127.0.0.1", 0))
        port = watch.getsockname()[1]
        watch.settimeout(0.5)
        log = run_script(f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.sendto(b"to the phone", socket.getaddrinfo("192.168.1.23", {port})[0][-1])
t = socket.socket()
try:
    t.connect(socket.getaddrinfo("93.184.216.34", 443)[0][-1])
    print("connected")
except OSError as e:
    print("connect failed", e.errno)
""").finish()
        with pytest.raises(socket.timeout):
            watch.recv(64)  # the same port on loopback heard nothing either
    assert f"board: refused 192.168.1.23:{port} (the virtual board reaches only 127.0.0.1)" in log
    assert "board: refused 93.184.216.34:443" in log
    assert "connect failed" in log and "connected" not in log.replace("connect failed", "")


def test_a_slow_resolver_blocks_the_lookup(run_script):
    log = run_script("""
import socket, time
t0 = time.ticks_ms()
socket.getaddrinfo("cloud.test", 1)
print("took", time.ticks_diff(time.ticks_ms(), t0))
t0 = time.ticks_ms()
socket.getaddrinfo("127.0.0.1", 1)
print("literal", time.ticks_diff(time.ticks_ms(), t0))
""", hosts={"cloud.test": "127.0.0.1"}, dns_delay_ms=700).finish()
    assert 700 <= int(re.search(r"took (\d+)", log)[1]) < 1500
    assert int(re.search(r"literal (\d+)", log)[1]) < 100


UDP = """
import socket, select, time
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(socket.getaddrinfo("127.0.0.1", PORT)[0][-1])
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
to = socket.getaddrinfo("127.0.0.1", PORT)[0][-1]
for n in range(1, 6):
    tx.sendto(b"x" * n, to)
time.sleep_ms(50)
p = select.poll()
p.register(rx, select.POLLIN)
got = []
while p.poll(0):
    got.append(len(rx.recv(64)))
tx.sendto(b"later", to)
time.sleep_ms(50)
got.append(len(rx.recv(64)) if p.poll(0) else 0)
print("got", got)
"""


@pytest.mark.parametrize("chip, got", [("esp8266", [1, 5]), ("esp32", [1, 2, 3, 4, 5, 5])])
def test_the_esp8266_udp_socket_keeps_one_datagram(run_script, chip, got):
    # modlwip.c:441: what arrives while one waits is dropped
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = run_script(UDP.replace("PORT", str(port)), chip=chip).finish()
    assert f"got {got}" in log


def test_the_esp32_station_as_network_wlan_c_has_it(run_script):
    log = run_script("""
import network, time
sta = network.WLAN(network.STA_IF)
sta.active(True)
print("boot", sta.status())
sta.connect("home", "wrong-password")
print("attempting", sta.status())
try:
    sta.connect("home", "secret")
except OSError as e:
    print("again:", e)
seen = set()
for _ in range(12):  # the driver retries on its own; each reason in turn
    time.sleep_ms(100)
    seen.add(sta.status())
print("wrong key", sorted(seen))
sta.disconnect()
print("after disconnect", sta.status())
sta.connect("home", "secret")
print("stale while trying", sta.status())
time.sleep_ms(400)
print("joined", sta.status(), sta.isconnected())
sta.disconnect()
sta.connect("nowhere", "x")
time.sleep_ms(400)
print("no AP", sta.status())
""", chip="esp32", wifi={"home": "secret"}).finish()
    assert "boot 1000" in log
    assert "attempting 1001" in log
    assert "again: Wifi Internal Error" in log
    # 15 and 204 leave the status CONNECTING; 202 shows as a wrong password
    assert "wrong key [202, 1001]" in log
    assert "after disconnect 1000" in log and "stale while trying 1000" in log
    assert "joined 1010 True" in log
    assert "no AP 201" in log


@pytest.mark.parametrize("chip", ["esp8266", "esp32"])
def test_the_standins_fit_the_heap_the_vm_gets_for_them(run_script, chip):
    # else the firmware would get less than --heap
    from esplink.board.deploy import STANDIN_HEAP

    log = run_script("""
import vboard
print("base", vboard.heap_base)
""", chip=chip).finish()
    base = int(re.search(r"base (\d+)", log)[1])
    assert 8000 < base <= STANDIN_HEAP
