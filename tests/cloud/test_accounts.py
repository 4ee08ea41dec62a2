"""Accounts, keys and devices over REST: who sees and drives what, claims and shares,
rename and delete, the token rules, the login limit, and no secret in any log line."""
import json
import logging
import secrets
import sqlite3
import time

import pytest

from cloud_fakes import FakeDevice, in_background
from esplink.cloud import openapi, web


@pytest.fixture
def logs(caplog):
    caplog.set_level(logging.DEBUG, logger="esplink.cloud")
    return caplog


def join(api, email, password="correct horse"):
    status, reply = api.request("POST", "/v1/user/join/", body={"email": email, "password": password})
    assert status == 200, reply
    return reply["key"]["token"]


def make(api, key, name):
    status, reply = api.request("POST", "/v1/user/devices/", key, {"name": name})
    assert status == 200, reply
    return reply


def online(cloud, api, master):
    """An activated, identified fake board; its token."""
    token = secrets.token_hex(20)
    board = FakeDevice(cloud, master)
    reply = board.request("/v1/device/activate/", body={"encrypt_method": "PLAIN", "token": token,
                                                        "bssid": "18:fe:34:00:00:01", "rom_version": "v"})
    assert reply["status"] == 200, reply
    assert board.request("/v1/device/identify/", "GET")["status"] == 200
    return board, token


def test_join_login_keys_and_the_password_at_rest(api, data_dir, logs):
    key = join(api, "Ada@example.org", "s3cret password")
    status, reply = api.request("POST", "/v1/user/login/", body={"email": "ada@example.org", "password": "s3cret password"})
    assert status == 200 and reply["key"]["token"] == key and reply["user"]["email"] == "ada@example.org"
    status, reply = api.request("POST", "/v1/keys/", body={"email": "ada@example.org", "password": "s3cret password",
                                                            "scope": "user"})
    assert (status, [k["token"] for k in reply["keys"]], reply["keys"][0]["scope"]) == (200, [key], 1)
    for body in ({"email": "ada@example.org", "password": "wrong password"}, {"email": "nobody@example.org", "password": "x"}):
        status, reply = api.request("POST", "/v1/user/login/", body=body)
        assert (status, reply["message"]) == (403, "wrong email or password")
    assert api.request("POST", "/v1/user/join/", body={"email": "ada@example.org", "password": "another one"})[0] == 400
    assert api.request("POST", "/v1/user/join/", body={"email": "not an email", "password": "long enough"})[0] == 400
    assert api.request("POST", "/v1/user/join/", body={"email": "b@example.org", "password": "short"})[0] == 400
    stored = sqlite3.connect(data_dir / "cloud.db").execute("SELECT password FROM users").fetchone()[0]
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert "s3cret" not in logs.text and key not in logs.text


def test_logins_are_rate_limited(api):
    join(api, "bob@example.org", "bobs password")
    for _ in range(web.LOGIN_FAILURES):
        assert api.request("POST", "/v1/user/login/", body={"email": "bob@example.org", "password": "guess"})[0] == 403
    status, reply = api.request("POST", "/v1/user/login/", body={"email": "bob@example.org", "password": "bobs password"})
    assert status == 429 and "wait" in reply["message"]  # even the right one, for a while
    assert api.request("POST", "/v1/keys/", body={"email": "bob@example.org", "password": "bobs password"})[0] == 429


def test_an_account_sees_and_drives_only_its_own_devices(cloud, api, logs):
    ada, bob = join(api, "ada@example.org"), join(api, "bob@example.org")
    lamp = make(api, ada, "lamp")
    fan = make(api, bob, "fan")
    lamp_id, fan_id = lamp["device"]["id"], fan["device"]["id"]
    status, reply = api.request("GET", "/v1/user/devices/", ada)
    assert status == 200 and [d["id"] for d in reply["devices"]] == [lamp_id]
    assert reply["devices"][0]["online"] == 0
    # bob cannot see, drive, rename or delete ada's lamp: for him it is not there
    for method, path in (("GET", "/v1/device/"), ("GET", "/v1/device/rpc/?action=LED_ON"),
                         ("PUT", "/v1/device/"), ("DELETE", "/v1/device/"),
                         ("GET", "/v1/datastreams/plug-status/datapoint/")):
        sep = "&" if "?" in path else "?"
        assert api.request(method, f"{path}{sep}device_id={lamp_id}", bob, {"name": "mine"})[0] == 404, path
    # shared, he sees and drives it, but cannot delete it
    assert api.request("POST", "/v1/key/share/", ada, {"device_id": lamp_id, "email": "bob@example.org"})[0] == 200
    assert api.request("POST", "/v1/key/share/", bob, {"device_id": fan_id, "email": "nobody@x.org"})[0] == 404
    assert api.request("POST", "/v1/key/share/", bob, {"device_id": lamp_id, "email": "bob@example.org"})[0] == 404
    status, reply = api.request("GET", "/v1/user/devices/", bob)
    assert sorted(d["id"] for d in reply["devices"]) == sorted([lamp_id, fan_id])
    board, _ = online(cloud, api, lamp["key"]["token"])
    call = in_background(api.request, "GET", f"/v1/device/rpc/?action=LED_ON&device_id={lamp_id}", bob)
    delivery = board.read()
    board.send({"status": 200, "nonce": delivery["nonce"], "deliver_to_device": True})
    assert call.result(10)[0] == 200
    assert api.request("DELETE", f"/v1/device/?device_id={lamp_id}", bob)[0] == 404
    board.close()
    assert lamp["key"]["token"] not in logs.text and ada not in logs.text and bob not in logs.text


def test_claim_rename_delete(cloud, api):
    ada = join(api, "ada@example.org")
    made = make(api, ada, "heater")
    dev_id, master = made["device"]["id"], made["key"]["token"]
    board, token = online(cloud, api, master)
    # claimed by another account with the phone's token: the device moves there
    bob = join(api, "bob@example.org")
    status, reply = api.request("POST", "/v1/key/authorize/", bob, {"token": token})
    assert status == 200 and reply["key"]["is_owner_key"] == 1 and reply["device"]["id"] == dev_id
    owner = reply["key"]["token"]
    assert api.request("POST", "/v1/key/authorize/", bob, {"token": token})[0] == 404  # once
    assert [d["id"] for d in api.request("GET", "/v1/user/devices/", bob)[1]["devices"]] == [dev_id]
    assert api.request("GET", "/v1/user/devices/", ada)[1]["devices"] == []
    # rename: PUT, and POST ?method=PUT as the app sends it
    status, reply = api.request("PUT", "/v1/device/", owner, {"name": "radiator"})
    assert (status, reply["device"]["name"]) == (200, "radiator")
    status, reply = api.request("POST", f"/v1/device/?method=PUT&device_id={dev_id}", bob, {"name": "boiler"})
    assert (status, reply["device"]["name"]) == (200, "boiler")
    assert api.request("PUT", "/v1/device/", owner, {"name": "no spaces please"})[0] == 400
    assert api.request("GET", "/v1/device/", master)[1]["device"]["name"] == "boiler"
    # delete: the device socket closes, its keys stop working
    assert api.request("POST", "/v1/device/?method=DELETE", master)[0] == 403
    assert api.request("POST", f"/v1/device/?method=DELETE&device_id={dev_id}", bob)[0] == 200
    with pytest.raises((EOFError, OSError)):
        board.read()
    assert api.request("GET", "/v1/device/", owner)[0] == 403


def test_tokens_are_the_phones_and_are_spent_once(cloud, api):
    ada = join(api, "ada@example.org")
    first, second = make(api, ada, "one"), make(api, ada, "two")
    board = FakeDevice(cloud, first["key"]["token"])
    for token in ("", ":token", "a", "X" * 40, "0123456789abcdefghijklmnopqrstuvwxyz012_"):
        reply = board.request("/v1/device/activate/", body={"token": token, "bssid": "b", "rom_version": "r"})
        assert reply["status"] == 400 and "40 characters of 0-9 and a-z" in reply["message"], token
    token = secrets.token_hex(20)
    assert board.request("/v1/device/activate/", body={"token": token})["status"] == 200
    assert board.request("/v1/device/activate/", body={"token": token})["status"] == 200  # the board retrying
    other = FakeDevice(cloud, second["key"]["token"])
    reply = other.request("/v1/device/activate/", body={"token": token})
    assert reply["status"] == 400 and "used already" in reply["message"]
    board.close()
    other.close()


def test_history_too_large_and_the_device_s_answer_stored(cloud, api):
    ada = join(api, "ada@example.org")
    made = make(api, ada, "plug")
    dev_id, master = made["device"]["id"], made["key"]["token"]
    board, _ = online(cloud, api, master)
    for x in (1, 0, 1):
        assert api.datapoint(master, "plug-status", {"x": x}, deliver=False)[0] == 200
    status, reply = api.request("GET", f"/v1/datastreams/plug-status/datapoints/?device_id={dev_id}", ada)
    assert status == 200 and [p["x"] for p in reply["datapoints"]] == [1, 0, 1] and all("at" in p for p in reply["datapoints"])
    assert api.datapoint(master, "temp", {"x": 21.5}, deliver=False)[0] == 200
    status, reply = api.request("GET", f"/v1/datastreams/?device_id={dev_id}", ada)
    assert [(s["name"], s["count"]) for s in reply["datastreams"]] == [("plug-status", 3), ("temp", 1)]
    bob = join(api, "bob@example.org")
    assert api.request("GET", f"/v1/datastreams/?device_id={dev_id}", bob)[0] == 404
    # a delivery the device could not take is refused at once, not after 10 s
    status, reply = api.request("GET", "/v1/device/rpc/?action=LED_ON&pad=" + "x" * 2100, master)
    assert status == 413 and "too large for the device" in reply["message"]
    # ... also while another delivery waits for its answer: said before queueing behind it
    pending = in_background(api.request, "GET", "/v1/device/rpc/?action=LED_ON", master)
    first = board.read()
    t0 = time.monotonic()
    status, reply = api.request("GET", "/v1/device/rpc/?action=LED_ON&pad=" + "x" * 2100, master)
    assert status == 413 and time.monotonic() - t0 < 2
    board.send({"status": 200, "nonce": first["nonce"], "deliver_to_device": True})
    assert pending.result(10)[0] == 200
    # a datapoint written through the device: the device's answer is what is stored
    call = in_background(api.datapoint, master, "plug-status", {"x": 0})
    delivery = board.read()
    board.send({"status": 200, "nonce": delivery["nonce"], "deliver_to_device": True, "datapoint": {"x": 7}})
    assert call.result(10)[1]["datapoint"] == {"x": 7}
    assert api.datapoint(master, "plug-status", deliver=False)[1]["datapoint"] == {"x": 7}
    board.close()


def test_every_path_is_documented(api):
    status, spec = api.request("GET", "/v1/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    routes = {(m.lower(), openapi.canonical(p)) for m, p, _ in web.ROUTES}
    documented = {(m, p) for p, ops in spec["paths"].items() for m in ops}
    assert routes == documented
    for ops in spec["paths"].values():
        for op in ops.values():
            assert op["summary"] and "200" in op["responses"]


def test_the_console_is_served(api):
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ctx, timeout=5)
    conn.request("GET", "/")
    resp = conn.getresponse()
    body = resp.read()
    assert resp.status == 200 and resp.getheader("Content-Type").startswith("text/html") and b"<!doctype html>" in body.lower()
    conn.close()


def test_json_bodies_whatever_the_content_type(cloud, api):
    # curl -d sends JSON as application/x-www-form-urlencoded, as the seed does
    import http.client

    conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ctx, timeout=5)
    body = json.dumps({"email": "c@example.org", "password": "form labelled"})
    conn.request("POST", "/v1/user/join/", body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert conn.getresponse().status == 200
    conn.close()


def test_where_devices_connect_and_the_ca(cloud, api, data_dir):
    import http.client

    status, reply = api.request("GET", "/v1/cloud/")
    assert status == 200 and reply["cloud"]["tls_port"] == cloud.tls_port
    assert reply["cloud"]["plain_port"] == cloud.plain_port
    for path, name in ((reply["cloud"]["ca_der"], "ca.der"), (reply["cloud"]["ca_pem"], "ca.pem")):
        conn = http.client.HTTPSConnection("127.0.0.1", api.port, context=api.ctx, timeout=5)
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == (data_dir / name).read_bytes()
        conn.close()


def test_a_request_the_parser_refuses_is_logged_without_its_bytes(cloud, api, logs):
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=str(cloud.ca_file))
    key = "k" * 40
    for head in (b"Content-Length: \xc2\xb2\r\nAuthorization: token " + key.encode(),
                 b"Authorization: token " + key.encode() + b"\x01"):
        with socket.create_connection(("127.0.0.1", api.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"POST /v1/user/login/ HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n\r\n{}")
                assert s.recv(64).startswith(b"HTTP/1.0 400 ")
    assert "HTTP request refused by the parser: 400" in logs.text
    assert key not in logs.text and "Content-Length" not in logs.text
