"""The web console in real headless Chromium (Debian's, driven by Playwright) against the
local cloud, with a virtual board (firmware .mpy on the 32-bit VM, 38 KB heap) paired
through the captive portal by the console's own link. Screenshots go to
$ESPLINK_ARTIFACTS when set."""
import re
import time

import pytest

from board_driver import HOME, PHONE, artifacts
from esplink.cloud import harness
from esplink.cloud.client import Client

DESKTOP = {"width": 1100, "height": 900}


@pytest.fixture
def cloud(tmp_path):
    running = harness.start_in_thread(tmp_path / "cloud")
    yield running
    running.stop()


@pytest.fixture
def console(chromium, cloud):
    """A browser tab on the console; JavaScript errors and CSP refusals are collected."""
    context = chromium.new_context(ignore_https_errors=True, viewport=DESKTOP)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    # an API's 4xx answer is logged by Chromium as "Failed to load resource": that is the
    # API working (a claim before activation, an unknown action); CSP refusals are not
    page.on("console", lambda m: m.type == "error" and not m.text.startswith("Failed to load resource")
            and page.errors.append(m.text))
    page.goto(f"https://127.0.0.1:{cloud.api_port}/")
    yield page
    context.close()


def sign_up(page, email, password="correct horse battery"):
    page.fill("#auth-form input[name=email]", email)
    page.fill("#auth-form input[name=password]", password)
    page.click("#auth-form button[value=join]")
    page.wait_for_selector(f"#who:text('{email}')")


def create(page, name):
    page.fill("#create-form input[name=name]", name)
    page.click("#create-form button")
    page.wait_for_selector("#created:not([hidden])")


def until(page, js, timeout=10.0):
    """Poll a JS expression (page.wait_for_function evaluates strings, which the console's
    CSP rightly refuses; page.evaluate goes through the DevTools protocol)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(js):
        assert time.monotonic() < deadline, f"never true: {js}"
        time.sleep(0.1)


def shot(page, tmp_path, name):
    png = page.screenshot(path=str(artifacts(tmp_path) / name), full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000


def test_sign_up_create_pair_and_drive_a_board(console, cloud, make_board, chromium, tmp_path):
    page = console
    sign_up(page, "ada@example.org")
    assert page.is_visible("text=No devices yet")

    create(page, "desk-lamp")
    card = "#created "
    key = page.inner_text(card + "[data-field=master_key]")
    assert re.fullmatch(r"[0-9a-f]{40}", key)
    assert re.fullmatch(r"\S+ \(#\d+\)", page.inner_text(card + "[data-field=product]"))
    assert len(page.inner_text(card + "[data-field=product_secret]")) >= 32
    assert len(page.inner_text(card + "[data-field=device_secret]")) >= 32
    assert page.inner_text(card + "[data-field=flash]").startswith(f"ESPLINK_DEVICE_KEY={key} tools/flash.sh")
    shot(page, tmp_path, "console-1-created.png")
    page.click(card + "[data-close]")
    assert page.inner_text(card + "[data-field=master_key]") == ""  # shown once
    page.wait_for_selector("#devices tbody tr:has-text('desk-lamp'):has-text('offline')")

    board = make_board(device_key=key, ca=cloud.cloud.paths.ca_der)
    board.expect(r"^led: pairing")
    page.click("#pair-button")
    token = page.inner_text("#pairing [data-field=token]")
    assert re.fullmatch(r"[0-9a-z]{40}", token)
    link = page.get_attribute("#pairing [data-field=link]", "href")
    assert link == f"http://10.10.7.1/?server=127.0.0.1%3A{cloud.tls_port}&token={token}"
    until(page, "document.querySelector('#pairing img').naturalWidth > 100")  # the QR code
    shot(page, tmp_path, "console-2-pairing.png")

    # the phone, on the board's AP, opens the link: the captive portal with server and token filled in
    phone = chromium.new_context(viewport=PHONE)
    try:
        portal = phone.new_page()
        portal.goto(link.replace("http://10.10.7.1/", f"http://127.0.0.1:{board.http_port}/"))
        assert portal.input_value("#token") == token
        portal.select_option("select#ssid", "home")
        portal.fill("#password", HOME["home"])
        portal.click("button[type=submit]")
        portal.wait_for_selector("text=Joining home")
    finally:
        phone.close()
    board.expect(r"^cloud: activated", timeout=40)
    # live: no reload, the console claims the device with its token and sees it online
    page.wait_for_selector("#pairing [data-field=status]:has-text('Paired: desk-lamp')", timeout=15000)
    page.wait_for_selector("#devices tbody tr:has-text('desk-lamp'):has-text('online')", timeout=15000)

    page.click("#devices tbody tr:has-text('desk-lamp')")
    page.wait_for_selector("#device:not([hidden]) .state.online")
    board.led_becomes(1)
    for button, lit in (("LED off", 0), ("LED on", 1)):
        page.click(f"#device button:text('{button}')")
        page.wait_for_selector('#reply:has-text(\'"status": 200\')')
        assert board.led_becomes(lit)

    page.fill("#action-form input[name=action]", "FLY")
    page.click("#action-form button")
    page.wait_for_selector("#reply:has-text('unknown action')")

    form = "#stream-form "
    for x in (0, 1, 0):
        page.fill(form + "input[name=x]", str(x))
        page.click(form + "button[value=write]")
        page.wait_for_selector(f'#reply:has-text(\'"x": {x}\')')
        assert board.led_becomes(x)
    until(page, "document.querySelector('#plot polyline') !== null"
                " && document.querySelector('#plot polyline').points.length === 3")
    assert page.inner_text("#plot-caption").startswith('3 datapoints in plug-status; latest {"x":0}')
    shot(page, tmp_path, "console-3-device.png")

    board.stop()  # the board loses power: the console shows it offline, without a reload
    page.wait_for_selector("#device .state.offline", timeout=20000)
    assert page.errors == []
    assert key not in page.content()


def test_rename_share_delete_and_sign_in_again(console, cloud, tmp_path):
    page = console
    api = Client("127.0.0.1", cloud.api_port, cloud.ca_file)
    assert api.request("POST", "/v1/user/join/", body={"email": "bob@example.org", "password": "bob's password"})[0] == 200

    page.fill("#auth-form input[name=email]", "ada@example.org")
    page.fill("#auth-form input[name=password]", "wrong password")
    page.click("#auth-form button[value=login]")
    page.wait_for_selector("#auth-error:text('wrong email or password')")
    sign_up(page, "ada@example.org")
    create(page, "plug")
    page.click("#created [data-close]")
    page.click("#devices tbody tr:has-text('plug')")

    page.fill("#rename-form input[name=name]", "kitchen-plug")
    page.click("#rename-form button")
    page.wait_for_selector("#devices tbody tr:has-text('kitchen-plug')")
    assert page.inner_text("#device [data-field=name]") == "kitchen-plug"

    page.fill("#share-form input[name=email]", "nobody@example.org")
    page.click("#share-form button")
    page.wait_for_selector("#device-error:text('no account with that email')")
    page.fill("#share-form input[name=email]", "bob@example.org")
    page.click("#share-form button")
    page.wait_for_selector("#device-error:text('Shared with bob@example.org.')")
    bob = api.request("POST", "/v1/user/login/", body={"email": "bob@example.org", "password": "bob's password"})[1]
    assert [d["name"] for d in api.request("GET", "/v1/user/devices/", bob["key"]["token"])[1]["devices"]] == [
        "kitchen-plug"]

    page.fill("#rename-form input[name=name]", "two words")
    page.click("#rename-form button")
    page.wait_for_selector("#device-error:not(:empty)")
    shot(page, tmp_path, "console-4-manage.png")

    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete")
    page.wait_for_selector("text=No devices yet")
    assert page.is_hidden("#device")

    page.click("#logout")
    page.wait_for_selector("#auth:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 0
    page.fill("#auth-form input[name=email]", "ada@example.org")
    page.fill("#auth-form input[name=password]", "correct horse battery")
    page.click("#auth-form button[value=login]")
    page.wait_for_selector("text=No devices yet")
    assert page.errors == []


def test_the_console_needs_no_other_host(console):
    """Every request the page makes stays on the cloud's own origin: it works on a LAN
    with no internet."""
    page = console
    origin = page.url.rstrip("/")
    seen = []
    page.on("request", lambda r: seen.append(r.url))
    page.reload()
    sign_up(page, "carol@example.org")
    create(page, "lamp")
    page.click("#pair-button")
    until(page, "document.querySelector('#pairing img').naturalWidth > 100")
    assert seen and all(u.startswith(origin + "/") or u.startswith("blob:" + origin) for u in seen), seen
    assert page.errors == []
