"""`esplink cloud ...` run as a user would, in a subprocess."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest

from cloud_fakes import FakeDevice
from esplink.cloud import certs
from esplink.cloud.client import Client
from esplink.cloud.protocol import fingerprint


def esplink(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "esplink.cli", "cloud", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


def test_device_create_and_devices(tmp_path):
    data = tmp_path / "cloud"
    run = esplink("device", "create", "--name", "plug", "--data", data)
    assert run.returncode == 0, run.stderr
    m = re.fullmatch(r"id: 1\nname: plug\nmaster device key: ([0-9a-f]{40})\n", run.stdout)
    assert m, run.stdout
    run = esplink("device", "create", "--data", data)
    assert "name: device2\n" in run.stdout
    for taken_or_bad in ("plug", "123", "two words", "x" * 65):
        run = esplink("device", "create", "--name", taken_or_bad, "--data", data)
        assert run.returncode == 1 and run.stderr.startswith("esplink: ") and run.stdout == ""

    run = esplink("devices", "--data", data)
    lines = run.stdout.splitlines()
    assert lines[0].split() == ["id", "name", "activated", "online", "last", "seen", "(UTC)"]
    assert lines[1].split() == ["1", "plug", "no", "no", "never"]
    assert lines[2].split() == ["2", "device2", "no", "no", "never"]
    assert m.group(1) not in run.stdout + run.stderr  # the key is shown once, at creation


def test_data_dir_defaults_to_the_environment(tmp_path):
    run = esplink("device", "create", env={"ESPLINK_CLOUD_DIR": str(tmp_path / "env")})
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "env" / "cloud.db").exists()


def test_devices_shows_online_and_activation(cloud, make_device, data_dir):
    dev = make_device("plug")
    board = FakeDevice(cloud, dev["master_key"]).login()
    row = esplink("devices", "--data", data_dir).stdout.splitlines()[1].split()
    assert row[:4] == ["1", "plug", "yes", "yes"] and re.fullmatch(r"\d{4}-\d\d-\d\d", row[4])
    board.close()


@pytest.mark.parametrize("ref", ["plug", "1"])
def test_rpc_prints_the_device_reply(cloud, make_device, data_dir, ref):
    dev = make_device("plug")
    board = FakeDevice(cloud, dev["master_key"]).login()
    seen = []

    def answer(delivery):
        seen.append(delivery)
        return [{"status": 200, "nonce": delivery["nonce"], "deliver_to_device": True, "led": "on"}]

    board.answer(answer)
    run = esplink("rpc", ref, "LED_ON", "level=3", "--data", data_dir)
    assert run.returncode == 0, run.stderr
    reply = json.loads(run.stdout)
    assert (reply["led"], reply["nonce"]) == ("on", seen[0]["nonce"])
    assert seen[0]["get"] == {"action": "LED_ON", "level": "3"}
    assert seen[0]["meta"]["Authorization"] == f"token {fingerprint(dev['master_key'])}"  # never the key itself
    board.close()


def test_rpc_errors(cloud, make_device, data_dir, tmp_path):
    dev = make_device("plug")
    run = esplink("rpc", "nosuch", "LED_ON", "--data", data_dir)
    assert run.returncode == 1 and "404 unknown device 'nosuch'" in run.stderr
    run = esplink("rpc", "plug", "LED_ON", "--data", data_dir)
    assert run.returncode == 1 and "HTTP 503" in run.stderr and run.stdout == ""
    board = FakeDevice(cloud, dev["master_key"]).login()
    board.answer(lambda d: [{"status": 400, "nonce": d["nonce"], "deliver_to_device": True,
                             "message": "unknown action"}])
    run = esplink("rpc", "plug", "FLY", "--data", data_dir)
    assert run.returncode == 1 and "HTTP 400 unknown action" in run.stderr
    assert esplink("rpc", "plug", "LED_ON", "oops", "--data", data_dir).returncode == 1
    board.close()


def test_rpc_without_a_running_server(make_device, data_dir):
    make_device("plug")
    run = esplink("rpc", "plug", "LED_ON", "--data", data_dir)
    assert run.returncode == 1 and "no cloud server running" in run.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_runs_and_stops_cleanly(tmp_path, sig):
    data = tmp_path / "cloud"
    with subprocess.Popen(
            [sys.executable, "-m", "esplink.cli", "cloud", "serve", "--data", str(data), "--host", "127.0.0.1",
             "--tls-port", "0", "--plain-port", "0", "--api-port", "0", "--cert-name", "cloud.test"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        try:
            first, second = proc.stdout.readline(), proc.stdout.readline()
            info = json.loads((data / "server.json").read_text())
            assert info["pid"] == proc.pid and info["host"] == "127.0.0.1"
            assert f"device TLS port {info['tls_port']}, plain TCP port {info['plain_port']}" in first
            assert f"REST API https port {info['api_port']}" in first
            assert second == f"boards verify the cloud with CA: {data / 'ca.der'} (PEM: ca.pem)\n"
            assert "cloud.test" in certs.cert_names(data / "server.pem")
            assert Client("127.0.0.1", info["api_port"], data / "ca.pem").ping()[0] == 200
            proc.send_signal(sig)
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert "stopped" in proc.stdout.read()
    assert not (data / "server.json").exists()


def test_authorize(cloud, make_device, data_dir):
    dev = make_device()
    board = FakeDevice(cloud, dev["master_key"])
    board.activate("k" * 40)
    run = esplink("authorize", "k" * 40, "--data", data_dir)
    assert run.returncode == 0, run.stderr
    assert re.fullmatch(r"owner key: [0-9a-f]{40}\n", run.stdout)
    run = esplink("authorize", "k" * 40, "--data", data_dir)
    assert run.returncode == 1 and "HTTP 404" in run.stderr
    board.close()


def test_datapoint_reads_and_writes_on_the_device_and_the_store(cloud, make_device, data_dir):
    dev = make_device("plug")
    board = FakeDevice(cloud, dev["master_key"]).login()
    seen = []

    def answer(delivery):
        seen.append(delivery)
        return [{"status": 200, "nonce": delivery["nonce"], "deliver_to_device": True,
                 "datapoint": {"x": 7}}]

    board.answer(answer, count=2)
    run = esplink("datapoint", "plug", "light", "x=1", "label=warm", "--data", data_dir)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["datapoint"] == {"x": 7}
    assert (seen[0]["method"], seen[0]["path"]) == ("POST", "/v1/datastreams/light/datapoint/")
    assert seen[0]["body"] == {"datapoint": {"x": 1, "label": "warm"}}  # numbers stay numbers
    run = esplink("datapoint", "plug", "light", "--data", data_dir)
    assert run.returncode == 0, run.stderr
    assert seen[1]["method"] == "GET"
    # the device's answer to the write is what the cloud stored
    run = esplink("datapoint", "plug", "light", "--stored", "--data", data_dir)
    assert json.loads(run.stdout)["datapoint"]["x"] == 7, run.stdout
    run = esplink("datapoint", "plug", "light", "x", "--data", data_dir)
    assert run.returncode == 1 and "bad parameter 'x'" in run.stderr
    board.close()


def test_help_shows_defaults():
    run = esplink("serve", "--help")
    assert "(default: 8443)" in run.stdout and "(default: 9443)" in run.stdout
    run = subprocess.run([sys.executable, "-m", "esplink.cli", "pair", "ap", "--help"],
                         capture_output=True, text=True)
    assert "(default: 10.10.7.1:80)" in run.stdout
