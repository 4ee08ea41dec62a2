"""Server lifecycle: server.json, restarts, stop."""
import json
import os
import socket

import pytest

from cloud_fakes import TOKEN, FakeDevice
from esplink import CommandError
from esplink.cloud.client import Client
from esplink.cloud.store import Store


def test_server_json_has_the_bound_ports_and_goes_on_stop(start_cloud, data_dir):
    cloud = start_cloud()
    info = json.loads((data_dir / "server.json").read_text())
    assert info == {"host": "127.0.0.1", "tls_port": cloud.tls_port, "plain_port": cloud.plain_port,
                    "api_port": cloud.api_port, "pid": os.getpid()}
    assert len({cloud.tls_port, cloud.plain_port, cloud.api_port}) == 3 and 0 not in info.values()
    assert cloud.ca_file == data_dir / "ca.pem" and cloud.data_dir == data_dir
    for port in (cloud.tls_port, cloud.plain_port, cloud.api_port):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    cloud.stop()
    assert not (data_dir / "server.json").exists()
    for port in (cloud.tls_port, cloud.plain_port, cloud.api_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


def test_stop_drops_connected_boards(start_cloud, make_device):
    cloud = start_cloud()
    dev = make_device()
    board = FakeDevice(cloud, dev["master_key"]).login()
    cloud.stop()
    assert board.is_closed()
    board.close()


def test_nothing_is_lost_across_a_restart(start_cloud, make_device, data_dir):
    cloud = start_cloud()
    dev = make_device("plug")
    board = FakeDevice(cloud, dev["master_key"]).login()
    board.request("/v1/datastreams/plug-status/datapoint/", "POST", {"datapoint": {"x": 1}})
    owner = Client("127.0.0.1", cloud.api_port, cloud.ca_file).authorize(TOKEN)
    cloud.stop()  # abrupt, as a killed process
    board.close()

    cloud = start_cloud()
    api = Client("127.0.0.1", cloud.api_port, cloud.ca_file)
    store = Store(data_dir)
    try:
        row = store.find_device("plug")
        assert (row["activated"], row["online"], row["token_claimed"]) == (1, 0, 1)
    finally:
        store.close()
    assert api.datapoint(owner, "plug-status", deliver=False) == (200, {"datapoint": {"x": 1}, "status": 200})
    assert api.rpc(owner, "LED_ON")[0] == 503  # known owner key, board not back yet
    board = FakeDevice(cloud, dev["master_key"])
    assert board.identify()["status"] == 200  # still activated: no second activation needed
    assert cloud.online(dev["id"]) and cloud.logins(dev["id"]) == 1
    with pytest.raises(CommandError):
        api.authorize(TOKEN)  # claimed before the restart
    board.close()


def test_online_flags_are_cleared_at_start(start_cloud, make_device, data_dir):
    dev = make_device()
    store = Store(data_dir)
    store.set_online(dev["id"], True)  # as left by a killed server
    store.close()
    start_cloud()
    store = Store(data_dir)
    try:
        assert store.device(dev["id"])["online"] == 0
    finally:
        store.close()


def test_a_second_server_on_the_same_data_is_refused(start_cloud, data_dir):
    # server.json naming another live process (our parent) as its owner
    (data_dir / "server.json").write_text(json.dumps(
        {"host": "127.0.0.1", "tls_port": 1, "plain_port": 2, "api_port": 3, "pid": os.getppid()}))
    with pytest.raises(CommandError, match="already uses"):
        start_cloud()
    (data_dir / "server.json").write_text(json.dumps({"pid": 2 ** 22 + 12345}))  # no such process
    start_cloud()


def test_a_port_in_use_fails_cleanly(start_cloud, data_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError):
            start_cloud(api_port=busy.getsockname()[1])
    assert not (data_dir / "server.json").exists()
    start_cloud()  # the ports taken by the failed start were released
