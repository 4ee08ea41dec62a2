"""The captive portal end to end on the virtual board (38 KB, esp8266 model): its DNS
asked by a real resolver client (dnspython), the phones' probes, the page and its form
in real headless Chromium (Debian's, driven by Playwright), with JavaScript on and off,
and a pairing server that a browser's connections and a slowloris cannot starve."""
import json
import os
import socket
import subprocess
import threading
import time

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from board_driver import HOME, PHONE, artifacts, http_exchange, read_until_quiet, split_responses
from esplink.phone import pair_ap

SCAN = [("home", -52), ("office", -67), ("neighbours <b>5G</b>", -80), ("home", -71)]


@pytest.fixture
def portal(make_board):
    board = make_board(scan=SCAN)
    board.expect(r"^ap: up")
    board.expect(r"^led: pairing")
    return board


# ---- DNS


def ask(board, name, rdtype="A"):
    q = dns.message.make_query(name, rdtype)
    return dns.query.udp(q, "127.0.0.1", port=board.dns_port, timeout=2)


def test_every_name_resolves_to_the_ap(portal):
    for name in ("connectivitycheck.gstatic.com", "captive.apple.com", "www.msftconnecttest.com", "example.org"):
        r = ask(portal, name)
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        (rrset,) = r.answer
        assert [rd.address for rd in rrset] == ["10.10.7.1"] and rrset.ttl == 60
    r = ask(portal, "example.org", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer  # no IPv6: the phone falls back to A


def test_dns_garbage_gets_no_crash(portal):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        for junk in (b"", b"\x00", b"\xff" * 11, b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\xc0\x0c",
                     os.urandom(512)):
            s.sendto(junk, ("127.0.0.1", portal.dns_port))
        time.sleep(0.3)
    assert ask(portal, "after.garbage").answer  # still answering
    assert "Traceback" not in portal.log() and "error:" not in portal.log()


# ---- HTTP: probes, page, details clients hit


def test_phone_probes_are_sent_to_the_portal(portal):
    for host, path in (("connectivitycheck.gstatic.com", "/generate_204"), ("captive.apple.com", "/hotspot-detect.html"),
                       ("www.msftconnecttest.com", "/connecttest.txt"), ("detectportal.firefox.com", "/canonical.html")):
        raw = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        (status, headers, _), = split_responses(http_exchange(portal.http_port, [raw]))
        # the chip's is http://10.10.7.1/; the virtual board is reached on loopback
        assert (status, headers["Location"]) == (302, f"http://127.0.0.1:{portal.http_port}/"), path


def test_curl_with_expect_100_continue_does_not_wait(portal):
    body = json.dumps({"ssid": "home", "password": HOME["home"]})
    t0 = time.monotonic()
    done = subprocess.run(["curl", "-s", "-H", "Expect: 100-continue", "-H", "Content-Type: application/json",
                           "--data-binary", body, f"http://127.0.0.1:{portal.http_port}/ap"],
                          capture_output=True, text=True, timeout=10)
    assert done.stdout == '{"error":0}' and time.monotonic() - t0 < 0.9  # curl waits 1 s without a 100
    portal.expect(r"^pairing: saved")


def test_head_and_allow(portal):
    (status, headers, body), = split_responses(
        http_exchange(portal.http_port, [b"HEAD /device HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n"]))
    assert status == 200 and int(headers["Content-Length"]) > 50 and body == b""
    # the portal's page, which streams from flash (no length: it ends with the connection)
    raw = http_exchange(portal.http_port, [b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % portal.http_port])
    assert raw.startswith(b"HTTP/1.1 200 OK\r\nContent-Type: text/html") and raw.endswith(b"Connection: close\r\n\r\n")
    (status, headers, _), = split_responses(
        http_exchange(portal.http_port, [b"DELETE /ap HTTP/1.1\r\nHost: 10.10.7.1\r\n\r\n"]))
    assert (status, headers["Allow"]) == (405, "POST")


def test_a_chinese_passphrase_is_taken_as_routers_take_it(make_board):
    wifi = {"家": "密码12345678"}
    board = make_board(wifi=wifi)
    board.expect(r"^led: pairing")
    pair_ap(f"127.0.0.1:{board.http_port}", "家", "密码12345678")
    board.expect(r"^pairing: saved")
    assert board.settings()["password"] == "密码12345678"


def test_two_posts_at_once_the_first_wins(portal):
    bodies = [json.dumps({"ssid": ssid, "password": HOME[ssid]}).encode() for ssid in ("home", "office")]
    raws = [b"POST /ap HTTP/1.1\r\nHost: 10.10.7.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (len(b), b) for b in bodies]
    phones = [socket.create_connection(("127.0.0.1", portal.http_port)) for _ in raws]
    try:
        for phone, raw in zip(phones, raws):  # the second within the 300 ms the first reply is given
            phone.sendall(raw)
        first, second = (read_until_quiet(phone) for phone in phones)
    finally:
        for phone in phones:
            phone.close()
    assert split_responses(first)[0][0] == 200
    (status, _, body), = split_responses(second)
    assert (status, json.loads(body)) == (409, {"error": 409, "reason": "already pairing"})
    portal.expect(r"^pairing: saved")
    assert portal.settings()["ssid"] == "home"


def test_a_browser_and_a_slowloris_do_not_starve_a_phone(portal):
    # a client trickling a request (reconnecting when dropped), a browser's six parallel
    # connections with the OS probes, then a phone app pairing, then the browser again
    stop = threading.Event()

    def slowloris():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", portal.http_port)) as s:
                    for c in b"GET /device HTTP/1.1\r\nX-Slow: " + b"a" * 500:
                        if stop.is_set():
                            return
                        s.sendall(bytes([c]))
                        time.sleep(0.2)
            except OSError:
                pass  # dropped to make room: again

    def browser():
        conns = [socket.create_connection(("127.0.0.1", portal.http_port)) for _ in range(6)]
        try:
            for k, s in enumerate(conns):
                path = ("/", "/generate_204", "/hotspot-detect.html", "/favicon.ico", "/ncsi.txt", "/connecttest.txt")[k]
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: 10.10.7.1\r\nAccept: text/html\r\n\r\n".encode())
            return [read_until_quiet(s, 0.3) for s in conns]
        finally:
            for s in conns:
                s.close()

    loris = threading.Thread(target=slowloris, daemon=True)
    loris.start()
    try:
        time.sleep(0.5)
        pages = browser()
        assert sum(1 for p in pages if p.startswith(b"HTTP/1.1 200") or p.startswith(b"HTTP/1.1 302")) >= 4
        identity, reply = pair_ap(f"127.0.0.1:{portal.http_port}", "home", HOME["home"])
        assert reply == {"error": 0} and identity["deviceid"] == portal.settings()["deviceid"]
    finally:
        stop.set()
    portal.expect(r"^pairing: saved")
    assert "out of memory" not in portal.log() and "Traceback" not in portal.log()


# ---- the page in Chromium


def open_portal(chromium, board, js=True, query=""):
    context = chromium.new_context(viewport=PHONE, java_script_enabled=js)
    page = context.new_page()
    response = page.goto(f"http://127.0.0.1:{board.http_port}/{query}")
    assert response.status == 200
    return context, page


def test_the_portal_renders_lists_networks_and_pairs(chromium, portal, tmp_path):
    context, page = open_portal(chromium, portal)
    try:
        assert portal.settings()["deviceid"] in page.inner_text("body")
        options = page.locator("select#ssid option").all_inner_texts()
        assert options == ["home (strong)", "office (fair)", "neighbours <b>5G</b> (weak)"]  # de-duplicated, strongest first, escaped
        shot = artifacts(tmp_path) / "portal.png"
        png = page.screenshot(path=str(shot), full_page=True)
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")  # IHDR
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and width == PHONE["width"] and height >= 600
        assert len(png) > 20000  # text, fields, a button: not a blank page
        page.select_option("select#ssid", "home")
        page.fill("#password", HOME["home"])
        page.click("button[type=submit]")
        page.wait_for_selector("text=Joining home")
        assert HOME["home"] not in page.content()
    finally:
        context.close()
    portal.expect(r"^pairing: saved")
    portal.expect(r"^mode: online", timeout=20)
    assert portal.settings()["ssid"] == "home"


def test_a_wrong_password_is_shown_on_the_page_when_the_phone_comes_back(chromium, portal):
    context, page = open_portal(chromium, portal)
    try:
        page.select_option("select#ssid", "office")
        page.fill("#password", "not-the-password")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Joining office")
    finally:
        context.close()
    portal.expect(r"^wifi: wrong password")
    portal.expect(r"^ap: up")
    portal.expect(r"^led: failed")
    context, page = open_portal(chromium, portal)
    try:
        notice = page.inner_text(".n")
        assert notice == 'Last attempt: could not join "office": wrong password'
        assert "not-the-password" not in page.content()
    finally:
        context.close()
    assert portal.settings()["ssid"] == ""  # nothing saved


def test_the_page_works_without_javascript_and_takes_a_hidden_network(chromium, portal):
    context, page = open_portal(chromium, portal, js=False, query="?server=127.0.0.1%3A8443&token=" + "t" * 40)
    try:
        assert page.input_value("#server") == "127.0.0.1:8443" and page.input_value("#token") == "t" * 40
        page.fill("#hidden", "office")
        page.fill("#password", HOME["office"])
        page.click("button[type=submit]")
        page.wait_for_selector("text=Joining office")
    finally:
        context.close()
    portal.expect(r"^pairing: saved")
    saved = portal.settings()
    assert (saved["ssid"], saved["server"], saved["port"], saved["token"]) == ("office", "127.0.0.1", 8443, "t" * 40)


def test_a_bad_password_in_the_form_is_explained(chromium, portal):
    context, page = open_portal(chromium, portal)
    try:
        page.fill("#password", "short")
        page.click("button[type=submit]")
        page.wait_for_selector("text=Not accepted")
        assert "8 to 63 characters" in page.inner_text("body")
    finally:
        context.close()
    assert "pairing: saved" not in portal.log()
