"""The REST API, with a fake board on the other side of every delivery."""
import http.client
import json
import time

import pytest

from cloud_fakes import TOKEN, FakeDevice, in_background
from esplink.cloud.client import Client, CloudError
from esplink.cloud.protocol import fingerprint


def reply_ok(delivery, **extra):
    return dict({"status": 200, "nonce": delivery["nonce"], "deliver_to_device": True}, **extra)


def test_ping(api):
    status, reply = api.ping()
    assert status == 200 and reply["status"] == 200
    assert abs(reply["epoch"] - time.time()) < 5


def test_authorize_claims_a_token_once(cloud, api, make_device, connect):
    dev = make_device()
    connect(dev["master_key"]).activate(TOKEN)
    status, reply = api.request("POST", "/v1/key/authorize/", body={"token": TOKEN})
    assert status == 200 and reply["status"] == 200
    key = reply["key"]
    assert (key["device_id"], key["is_owner_key"]) == (dev["id"], 1)
    assert len(key["token"]) == 40 and int(key["token"], 16) >= 0 and key["token"] != dev["master_key"]
    with pytest.raises(CloudError) as e:
        api.authorize(TOKEN)
    assert e.value.status == 404


def test_authorize_unknown_token_or_bad_body(api):
    assert api.request("POST", "/v1/key/authorize/", body={"token": "n" * 40})[0] == 404
    assert api.request("POST", "/v1/key/authorize/", body={"nope": 1})[0] == 400
    assert api.request("GET", "/v1/key/authorize/")[0] == 405


def test_a_new_token_makes_a_new_owner_and_revokes_the_old(cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"])
    board.activate("a" * 40)
    old = api.authorize("a" * 40)
    board.activate("b" * 40)
    new = api.authorize("b" * 40)
    assert api.datapoint(new, "s", deliver=False)[0] == 404  # known key, no datapoint yet
    assert api.datapoint(old, "s", deliver=False)[0] == 403


def test_rpc_is_relayed_and_matched_by_nonce(cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    owner = api.authorize(TOKEN)
    call = in_background(api.rpc, owner, "LED_ON", level="3")
    raw = board.read_raw()
    delivery = json.loads(raw)
    assert raw == (json.dumps(delivery, sort_keys=True) + "\n").encode()
    nonce = delivery.pop("nonce")
    assert type(nonce) is int and 0 <= nonce < 2 ** 31
    assert delivery == {"deliver_to_device": True, "get": {"action": "LED_ON", "level": "3"},
                        "meta": {"Authorization": f"token {fingerprint(owner)}", "Time-Zone": "Asia/Shanghai"},
                        "method": "GET", "path": "/v1/device/rpc/"}
    # a stale reply (another nonce) is ignored; the matching one answers the call
    board.send({"status": 200, "nonce": (nonce + 1) % 2 ** 31, "deliver_to_device": True, "led": "stale"})
    board.send({"status": 200, "nonce": nonce, "deliver_to_device": True, "led": "on"})
    status, reply = call.result(10)
    assert status == 200
    assert reply == {"status": 200, "nonce": nonce, "deliver_to_device": True, "led": "on"}


def test_rpc_post_carries_the_body_and_the_device_status_becomes_the_http_status(
        cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    call = in_background(api.request, "POST", "/v1/device/rpc/?deliver_to_device=true&action=bogus",
                         dev["master_key"], {"x": 1})
    delivery = board.read()
    assert (delivery["method"], delivery["body"], delivery["get"]) == ("POST", {"x": 1}, {"action": "bogus"})
    board.send(reply_ok(delivery, status=400, message="unknown action"))
    status, reply = call.result(10)
    assert (status, reply["message"]) == (400, "unknown action")


def test_a_reply_without_status_is_200(cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    board.answer(lambda d: [{"nonce": d["nonce"], "deliver_to_device": True}])
    assert api.rpc(dev["master_key"], "noop")[0] == 200


def test_rpcs_to_one_device_are_serialized(cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    calls = [in_background(api.rpc, dev["master_key"], f"A{i}") for i in range(3)]
    seen = []
    for _ in range(3):
        delivery = board.read()
        board.sock.settimeout(0.2)  # no second delivery while this one is unanswered
        with pytest.raises(TimeoutError):
            board.read()
        board.sock.settimeout(5)
        seen.append(delivery["get"]["action"])
        board.send(reply_ok(delivery, action=delivery["get"]["action"]))
    assert sorted(seen) == ["A0", "A1", "A2"]
    assert sorted(c.result(10)[1]["action"] for c in calls) == ["A0", "A1", "A2"]


def test_rpc_to_an_offline_device_is_503(cloud, api, make_device):
    dev = make_device()
    status, reply = api.rpc(dev["master_key"], "LED_ON")
    assert status == 503 and reply["status"] == 503 and "offline" in reply["message"]


def test_rpc_timeout_is_504(start_cloud, make_device):
    cloud = start_cloud(rpc_timeout=0.3)
    dev = make_device()
    board = FakeDevice(cloud, dev["master_key"]).login()
    api = Client("127.0.0.1", cloud.api_port, cloud.ca_file)
    t0 = time.time()
    status, reply = api.rpc(dev["master_key"], "LED_ON")
    assert (status, reply["status"]) == (504, 504)
    assert 0.3 <= time.time() - t0 < 3
    late = board.read()
    board.send(reply_ok(late))  # a reply after the timeout is dropped, the link lives on
    assert board.request("/v1/ping/", "POST")["status"] == 200
    board.close()


def test_device_gone_during_rpc_is_503(cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    call = in_background(api.rpc, dev["master_key"], "sys_reboot")
    board.read()
    board.close()  # rebooting, no reply
    assert call.result(10)[0] == 503


@pytest.mark.parametrize("auth,status", [
    (None, 401), ("Bearer abc", 401), ("token", 401), ("token " + "f" * 40, 403)])
def test_rpc_bad_authorization(cloud, api, auth, status):
    conn = http.client.HTTPSConnection("127.0.0.1", cloud.api_port, context=api.ctx, timeout=5)
    conn.request("GET", "/v1/device/rpc/?deliver_to_device=true&action=x",
                 headers={"Authorization": auth} if auth else {})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert (resp.status, body["status"]) == (status, status) and body["message"]
    assert resp.getheader("Content-Type") == "application/json"


def test_rpc_needs_an_action(cloud, api, make_device):
    assert api.request("GET", "/v1/device/rpc/?deliver_to_device=true", make_device()["master_key"])[0] == 400


def test_datastream_delivered_to_the_device(cloud, api, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    call = in_background(api.datapoint, dev["master_key"], "plug-status", {"x": 1})
    d = board.read()
    assert (d["method"], d["path"], d["get"], d["body"]) == (
        "POST", "/v1/datastreams/plug-status/datapoint/", {}, {"datapoint": {"x": 1}})
    board.send(reply_ok(d, datapoint={"x": 1}))
    assert call.result(10) == (200, reply_ok(d, datapoint={"x": 1}))

    call = in_background(api.datapoint, dev["master_key"], "plug-status")
    d = board.read()
    assert (d["method"], d["get"], "body" in d) == ("GET", {}, False)
    board.send(reply_ok(d, datapoint={"x": 0}))
    assert call.result(10)[1]["datapoint"] == {"x": 0}


def test_datastream_store_and_latest_without_delivery(cloud, api, make_device, connect):
    dev = make_device()
    assert api.datapoint(dev["master_key"], "temp", deliver=False)[0] == 404
    assert api.datapoint(dev["master_key"], "temp", {"x": 21}, deliver=False) == (
        200, {"datapoint": {"x": 21}, "status": 200})
    api.datapoint(dev["master_key"], "temp", {"x": 22}, deliver=False)
    connect(dev["master_key"]).login().request(
        "/v1/datastreams/temp/datapoint/", "POST", {"datapoint": {"x": 23}})
    assert api.datapoint(dev["master_key"], "temp", deliver=False) == (
        200, {"datapoint": {"x": 23}, "status": 200})
    status, _ = api.request("POST", "/v1/datastreams/temp/datapoint/", dev["master_key"], {"x": 1})
    assert status == 400


def test_activate_over_http_as_in_the_seeds_curl(cloud, api, make_device):
    dev = make_device()
    # the seed's literal ":token", and other shapes a phone never makes, are refused
    for token in (":token", "a", "", TOKEN.upper(), TOKEN + "0", None):
        status, reply = api.request("POST", "/v1/device/activate/", dev["master_key"],
                                    {"encrypt_method": "PLAIN", "bssid": ":bssid", "token": token})
        assert status == 400 and ("40 characters" in reply["message"] or "short strings" in reply["message"]), token
    status, reply = api.request("POST", "/v1/device/activate/", dev["master_key"],
                                {"encrypt_method": "PLAIN", "bssid": ":bssid", "token": TOKEN})
    assert status == 200 and "nonce" not in reply
    assert reply["device"]["activate_status"] == 1 and reply["token"]["token"] == TOKEN
    # the board retrying with its token is fine; another device with the spent token is not
    assert api.request("POST", "/v1/device/activate/", dev["master_key"], {"token": TOKEN})[0] == 200
    other = make_device()
    status, reply = api.request("POST", "/v1/device/activate/", other["master_key"], {"token": TOKEN})
    assert status == 400 and "used already" in reply["message"]
    assert api.request("POST", "/v1/device/activate/", "f" * 40, {"token": "t"})[0] == 403


def test_http_edges(cloud, api):
    assert api.request("GET", "/v1/nowhere/")[0] == 404
    assert api.request("DELETE", "/v1/ping/")[0] == 405
    conn = http.client.HTTPSConnection("127.0.0.1", cloud.api_port, context=api.ctx, timeout=5)
    conn.putrequest("POST", "/v1/key/authorize/")
    conn.putheader("Content-Length", "70000")  # refused before any body is read
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    conn = http.client.HTTPSConnection("127.0.0.1", cloud.api_port, context=api.ctx, timeout=5)
    conn.request("POST", "/v1/key/authorize/", body=b"{not json")
    assert conn.getresponse().status == 400
    conn.close()


def test_client_reports_an_unreachable_cloud(cert_template):
    api = Client("127.0.0.1", 1, cert_template / "ca.pem", timeout=2)
    with pytest.raises(CloudError, match="cannot reach the cloud"):
        api.ping()
