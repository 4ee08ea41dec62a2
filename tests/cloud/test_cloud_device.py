"""The device socket, as a board sees it."""
import datetime
import json
import logging
import socket
import time

import pytest

from cloud_fakes import BSSID, ROM, TOKEN, cloud_style
from esplink.cloud.protocol import Offline
from esplink.cloud.store import Store

BYEBYE = {"message": "byebye, close by other peer login with same master key", "status": 200}


def stored(data_dir, device_id):
    store = Store(data_dir)
    try:
        return store.device(device_id)
    finally:
        store.close()


@pytest.mark.parametrize("tls", [True, False])
def test_activate(cloud, make_device, connect, data_dir, tls):
    dev = make_device("plug")
    board = connect(dev["master_key"], tls=tls)
    board.send({"nonce": 66, "path": "/v1/device/activate/", "method": "POST",
                "body": {"encrypt_method": "PLAIN", "token": TOKEN, "bssid": BSSID, "rom_version": ROM},
                "meta": {"Authorization": f"token {dev['master_key']}"}})
    raw = board.recv_chunk()  # the whole reply in one TLS record / TCP read: one write
    reply = json.loads(raw)
    assert raw == cloud_style(reply) and raw.endswith(b"}\n")
    assert len(raw) < 2048 - 40  # the firmware's 2 KB frame buffer, with room for a longer name; the seed's was ~1.6 KB
    assert reply["status"] == 200 and reply["nonce"] == 66
    assert reply["device"]["activate_status"] == 1 and reply["device"]["id"] == dev["id"]
    assert reply["device"]["bssid"] == BSSID and reply["device"]["rom_version"] == ROM
    assert reply["key"]["token"] == dev["master_key"] and reply["key"]["activate_status"] == 1
    assert reply["token"]["token"] == TOKEN and reply["token"]["activate_status"] == 1

    row = stored(data_dir, dev["id"])
    assert (row["activated"], row["token"], row["bssid"], row["rom_version"], row["online"]) == (
        1, TOKEN, BSSID, ROM, 1)
    assert cloud.online(dev["id"]) and cloud.logins(dev["id"]) == 1


def test_bad_key_missing_and_garbled_authorization(cloud, make_device, connect, caplog):
    caplog.set_level(logging.INFO, logger="esplink.cloud")
    dev = make_device()
    board = connect(dev["master_key"])
    assert board.activate(key="f" * 40) == {
        "message": "invalid device key", "nonce": board.nonce, "status": 403}
    # the cloud's operator sees the refusal, not the key that was tried
    assert "device socket from 127.0.0.1: refused an unknown device key" in caplog.text
    assert "f" * 40 not in caplog.text
    board.send({"nonce": 5, "path": "/v1/device/activate/", "method": "POST", "body": {"token": TOKEN}})
    assert board.read()["status"] == 401
    board.send({"nonce": 6, "path": "/v1/ping/", "method": "POST", "meta": {"Authorization": dev["master_key"]}})
    assert board.read()["status"] == 401
    board.send({"nonce": 7, "path": "/v1/ping/", "method": "POST", "meta": "token"})
    assert board.read() == {"message": 'missing or garbled Authorization (want "token <device key>")',
                            "nonce": 7, "status": 401}
    assert not cloud.online(dev["id"]) and cloud.logins(dev["id"]) == 0


def test_identify_before_activation_is_refused(cloud, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"])
    reply = board.identify()
    assert reply == {"message": "device not activated", "nonce": board.nonce, "status": 403}
    assert not cloud.online(dev["id"])
    assert board.activate()["status"] == 200
    reply = board.identify()
    assert reply["status"] == 200 and reply["device"]["id"] == dev["id"]
    assert set(reply) == {"device", "nonce", "status"}
    assert cloud.logins(dev["id"]) == 2  # activate and identify, same socket


def test_identify_without_trailing_slash_on_a_new_connection(cloud, make_device, connect):
    dev = make_device()
    connect(dev["master_key"]).activate()
    board = connect(dev["master_key"])
    reply = board.request("/v1/device/identify", "GET")
    assert reply["status"] == 200 and reply["device"]["activate_status"] == 1


def test_ping(cloud, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"])
    before = int(time.time())
    reply = board.request("/v1/ping/", "POST", nonce=68)
    assert set(reply) == {"datetime", "epoch", "message", "nonce", "status"}
    assert (reply["message"], reply["nonce"], reply["status"]) == ("ping success", 68, 200)
    assert before <= reply["epoch"] <= time.time() + 1
    # Beijing time, as the real cloud's reply showed
    beijing = datetime.datetime.fromtimestamp(reply["epoch"], datetime.timezone(datetime.timedelta(hours=8)))
    assert reply["datetime"] == beijing.strftime("%Y-%m-%d %H:%M:%S")


def test_datapoint_upload_is_stored(cloud, make_device, connect, data_dir):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    reply = board.request("/v1/datastreams/plug-status/datapoint/", "POST", {"datapoint": {"x": 1}})
    assert reply == {"datapoint": {"x": 1}, "nonce": board.nonce, "status": 200}
    board.request("/v1/datastreams/plug-status/datapoint/", "POST", {"datapoint": {"x": 0, "y": 2}})
    store = Store(data_dir)
    try:
        assert store.latest_datapoint(dev["id"], "plug-status") == {"x": 0, "y": 2}
        assert store.latest_datapoint(dev["id"], "other") is None
    finally:
        store.close()
    assert board.request("/v1/datastreams/plug-status/datapoint/", "POST", {"x": 1})["status"] == 400


def test_datapoint_needs_activation(cloud, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"])
    reply = board.request("/v1/datastreams/s/datapoint/", "POST", {"datapoint": {"x": 1}})
    assert reply["status"] == 403


@pytest.mark.parametrize("junk,nonce", [
    (b"garbage\n", None),
    (b'{"nonce": 41, "path": \n', 41),
    (b"[1, 2, 3]\n", None),
    (b"\xff\xff\xff\n", None),
    (b"[" * 3000 + b"\n", None),
    (b'{"nonce": 42, "path": "/v1/ping/", "pad": "' + b"x" * 5000 + b'"}\n', 42),
    (b"y" * 20000 + b"\n", None),
])
def test_garbage_and_oversize_lines_get_400_and_the_socket_stays_usable(
        cloud, make_device, connect, junk, nonce):
    dev = make_device()
    board = connect(dev["master_key"])
    board.write(junk)
    reply = board.read()
    assert reply["status"] == 400 and reply["message"]
    assert reply.get("nonce") == nonce
    assert board.request("/v1/ping/", "POST")["message"] == "ping success"


def test_two_frames_in_one_write_and_one_frame_in_pieces(cloud, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"], tls=False)
    auth = {"Authorization": f"token {dev['master_key']}"}
    frame = lambda n: json.dumps({"nonce": n, "path": "/v1/ping/", "method": "POST", "meta": auth}).encode() + b"\n"
    board.write(frame(1) + b"\r\n" + frame(2))  # a blank line in between is ignored
    assert [board.read()["nonce"], board.read()["nonce"]] == [1, 2]
    f3 = frame(3)
    for i in range(0, len(f3), 7):
        board.write(f3[i:i + 7])
        time.sleep(0.005)
    assert board.read()["nonce"] == 3


@pytest.mark.parametrize("msg,status", [
    ({"nonce": 1, "path": "/v1/nowhere/", "method": "GET"}, 404),
    ({"nonce": 1, "path": "/v1/device/activate/", "method": "GET"}, 405),
    ({"nonce": 1, "method": "GET"}, 400),
    ({"nonce": 1, "path": 7, "method": "GET"}, 400),
])
def test_unknown_path_wrong_method_missing_path(cloud, make_device, connect, msg, status):
    dev = make_device()
    board = connect(dev["master_key"])
    board.send(dict(msg, meta={"Authorization": f"token {dev['master_key']}"}))
    reply = board.read()
    assert (reply["status"], reply["nonce"]) == (status, 1)


@pytest.mark.parametrize("body", [None, "text", {"token": 5}, {"token": "t" * 500}])
def test_activate_with_a_bad_body_is_400(cloud, make_device, connect, body):
    dev = make_device()
    board = connect(dev["master_key"])
    board.send({"nonce": 9, "path": "/v1/device/activate/", "method": "POST", "body": body,
                "meta": {"Authorization": f"token {dev['master_key']}"}})
    assert board.read()["status"] == 400
    assert not cloud.online(dev["id"])


def test_a_second_login_replaces_the_first(cloud, make_device, connect, data_dir):
    dev = make_device()
    first = connect(dev["master_key"]).login()
    assert cloud.logins(dev["id"]) == 2
    second = connect(dev["master_key"], tls=False)
    assert second.identify()["status"] == 200
    assert first.read_raw() == cloud_style(BYEBYE)
    assert first.is_closed()
    assert cloud.online(dev["id"]) and cloud.logins(dev["id"]) == 3
    assert stored(data_dir, dev["id"])["online"] == 1  # the old socket's end does not log it out
    assert second.request("/v1/ping/", "POST")["status"] == 200


def test_disconnect_marks_the_device_offline(cloud, make_device, connect, data_dir):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    assert stored(data_dir, dev["id"])["online"] == 1
    board.close()
    deadline = time.time() + 3
    while cloud.online(dev["id"]) and time.time() < deadline:
        time.sleep(0.01)
    assert not cloud.online(dev["id"])
    assert stored(data_dir, dev["id"])["online"] == 0


def test_send_raw_reaches_the_board_unchanged(cloud, make_device, connect):
    dev = make_device()
    board = connect(dev["master_key"]).login()
    board.sock.settimeout(5)
    cloud.send_raw(dev["id"], b'{"no": "newline"}')
    assert board.recv_chunk() == b'{"no": "newline"}'
    cloud.send_raw(dev["id"], b'{"a": 1}\n{"b": 2}\n')
    assert board.read() == {"a": 1} and board.read() == {"b": 2}


def test_send_raw_to_an_offline_device_raises(cloud, make_device):
    with pytest.raises(Offline):
        cloud.send_raw(make_device()["id"], b"x")


def test_tls_port_survives_a_plain_client_and_a_silent_one(cloud, make_device, connect):
    junk = socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=5)
    junk.sendall(b'{"nonce": 1, "path": "/v1/ping/"}\n')  # not a TLS ClientHello
    junk.close()
    idle = socket.create_connection(("127.0.0.1", cloud.tls_port), timeout=5)
    dev = make_device()
    assert connect(dev["master_key"]).request("/v1/ping/", "POST")["status"] == 200
    idle.close()
