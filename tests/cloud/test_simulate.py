"""The fleet simulator (esplink.cloud.simulate): its devices say what the firmware says,
byte shape for byte shape, and a fleet of them runs against the real cloud: activate,
identify, RPCs through the REST API, a cloud restart, and the `simulate` command."""
import argparse
import asyncio
import concurrent.futures
import json
import re
import ssl
import subprocess
import sys
import threading
import time

import pytest

from esplink.cloud import simulate
from esplink.cloud.client import Client
from esplink.cloud.protocol import encode
from esplink.cloud.simulate import FleetThread, fake_mac
from esplink.cloud.store import Store
from espcloud import actions, proto  # the firmware's own code (tests/conftest.py puts it on the path)

N = 20


@pytest.fixture
def fleets():
    made = []

    def make(cloud, **kw):
        kw.setdefault("backoff", 0.2)
        kw.setdefault("backoff_max", 1.0)
        f = FleetThread("127.0.0.1", cloud.tls_port, cloud.ca_file, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.stop()


def specs(devices):
    return [(d["id"], d["master_key"], None) for d in devices]


def wait_for(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


# ---- the wire, against a scripted peer that records every byte


class FakeBoard:
    """What the firmware's action handlers need (espcloud/actions.py)."""

    def __init__(self, plug=0):
        self.plug = plug

    def set_plug(self, x):
        self.plug = x

    def reboot_soon(self):
        pass


class ScriptedCloud:
    """A TLS listener (the cloud's certificate) on its own loop; each accepted
    connection is handed to `script(reader, writer, index)`."""

    def __init__(self, data_dir, script):
        self.script, self.accepted, self.errors = script, [], []
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(data_dir / "server.pem", data_dir / "server.key")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=ctx), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        self.ca_file = data_dir / "ca.pem"
        self.tls_port = self.port

    async def _handle(self, reader, writer):
        i = len(self.accepted)
        self.accepted.append(time.monotonic())
        try:
            await self.script(reader, writer, i)
        except Exception as e:  # reported by the test, not lost in the loop
            self.errors.append(f"connection {i}: {e!r}")
        finally:
            writer.transport.abort()

    def close(self):
        async def close():
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


async def read_frame(reader, timeout=5.0) -> bytes:
    """One read: a device writes each frame in one piece, so one TLS record, one frame."""
    return await asyncio.wait_for(reader.read(65536), timeout)


def frame(raw: bytes) -> dict:
    """A frame from the simulator: one JSON object on one line (written in one piece),
    in the cloud's json.dumps style, with a fresh 31-bit nonce."""
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw
    msg = json.loads(raw)
    assert raw == encode(msg)
    assert type(msg["nonce"]) is int and 0 <= msg["nonce"] < 2 ** 31
    return msg


def test_a_device_says_what_the_firmware_says(data_dir, fleets):
    dev = Store(data_dir).create_device("wire")
    seen = {}
    deliveries = [
        {"deliver_to_device": True, "get": {"action": "LED_ON"}, "meta": {}, "method": "GET",
         "nonce": 11, "path": "/v1/device/rpc/"},
        {"deliver_to_device": True, "get": {}, "meta": {}, "method": "GET", "nonce": 12,
         "path": "/v1/datastreams/plug-status/datapoint/"},
        {"body": {"datapoint": {"x": 0}}, "deliver_to_device": True, "get": {}, "meta": {},
         "method": "POST", "nonce": 13, "path": "/v1/datastreams/plug-status/datapoint/"},
        {"body": {"datapoint": {"x": 7}}, "deliver_to_device": True, "get": {}, "meta": {},
         "method": "POST", "nonce": 14, "path": "/v1/datastreams/plug-status/datapoint/"},
        {"deliver_to_device": True, "get": {"action": "FLY"}, "meta": {}, "method": "GET",
         "nonce": 15, "path": "/v1/device/rpc/"},
        {"deliver_to_device": True, "get": {}, "meta": {}, "method": "GET", "nonce": 16,
         "path": "/v1/datastreams/humidity/datapoint/"},
    ]

    async def script(reader, writer, i):
        if i == 0:
            raw = await read_frame(reader)
            msg = frame(raw)
            token = msg["body"]["token"]
            assert json.loads(proto.activate(msg["nonce"], dev["master_key"], token, fake_mac(dev["id"]),
                                             simulate.ROM_VERSION)) == msg
            assert re.fullmatch(r"[0-9a-z]{40}", token)
            assert re.fullmatch(r"18:fe:34(:[0-9a-f]{2}){3}", msg["body"]["bssid"])
            writer.write(encode({"device": {"activate_status": 1}, "nonce": msg["nonce"], "status": 200}))
            raw = await read_frame(reader)
            msg = frame(raw)
            assert json.loads(proto.identify(msg["nonce"], dev["master_key"])) == msg
            writer.write(encode({"device": {}, "nonce": msg["nonce"], "status": 200}))
            board = FakeBoard()
            for d in deliveries:
                writer.write(encode(d))
                raw = await read_frame(reader)
                reply = frame(raw)
                # what the firmware's own handlers answer to the same delivery
                assert reply == json.loads(actions.dispatch(board, d)[1]), d
                seen.setdefault("replies", []).append(reply)
            # silence: a ping (ping_interval 0.4 s); answered, then left unanswered
            t0 = time.monotonic()
            raw = await read_frame(reader)
            msg = frame(raw)
            assert json.loads(proto.ping(msg["nonce"], dev["master_key"])) == msg
            assert time.monotonic() - t0 >= 0.3
            writer.write(encode({"message": "ping success", "nonce": msg["nonce"], "status": 200}))
            raw = await read_frame(reader)
            assert json.loads(raw)["path"] == "/v1/ping/"
            t1 = time.monotonic()
            assert await read_frame(reader) == b""  # no answer to the ping: the device hangs up
            seen["dead_after"] = time.monotonic() - t1
        elif i == 1:
            raw = await read_frame(reader)  # activated already: identify, no second activate
            msg = frame(raw)
            assert msg["path"] == "/v1/device/identify/"
            writer.write(encode({"message": "device not activated", "nonce": msg["nonce"], "status": 403}))
            assert await read_frame(reader) == b""  # refused: it hangs up ...
        elif i == 2:
            raw = await read_frame(reader)  # ... and activates afresh, with the same token
            msg = frame(raw)
            assert msg["path"] == "/v1/device/activate/"
            seen["reactivated"] = True
            await asyncio.sleep(30)

    cloud = ScriptedCloud(data_dir, script)
    try:
        f = fleets(cloud, ping_interval=0.4)
        f.start(devices=specs([dev]))
        assert wait_for(lambda: seen.get("reactivated") or cloud.errors, 15), cloud.errors
        assert not cloud.errors
        assert [r["status"] for r in seen["replies"]] == [200, 200, 200, 400, 400, 400]
        assert seen["replies"][1]["datapoint"] == {"x": 1} and seen["replies"][2]["datapoint"] == {"x": 0}
        assert 0.3 <= seen["dead_after"] < 2.0
        c = f.counts()
        assert (c["activations"], c["identifications"], c["answered"], c["dead_links"], c["rejected"]) == (1, 1, 6, 1, 1)
        assert c["bad_frames"] == 0 and c["reconnects"] == 2
    finally:
        cloud.close()


def test_reconnects_back_off_exponentially_with_jitter_up_to_the_cap(data_dir, fleets):
    dev = Store(data_dir).create_device("backoff")

    async def hang_up(reader, writer, i):
        pass  # closed at once: the TLS handshake fails

    cloud = ScriptedCloud(data_dir, hang_up)
    try:
        f = fleets(cloud, backoff=0.1, backoff_max=0.4)
        f.start(devices=specs([dev]))
        assert wait_for(lambda: len(cloud.accepted) >= 7, 15)
        t = cloud.accepted[:7]
        gaps = [b - a for a, b in zip(t, t[1:])]
        # the wait is in [ceiling/2, ceiling), ceiling = 0.1 s doubling, capped at 0.4 s
        for k, gap in enumerate(gaps):
            ceiling = min(0.4, 0.1 * 2 ** k)
            assert ceiling / 2 - 0.01 <= gap <= ceiling + 0.25, (k, gaps)
        c = f.counts()
        assert c["attempts"] >= 7 and c["identifications"] == 0 and c["connected"] <= 1
    finally:
        cloud.close()


# ---- a fleet against the cloud


def test_a_fleet_identifies_and_answers_rpcs_through_the_rest_api(cloud, make_device, fleets, data_dir):
    devices = [make_device() for _ in range(N)]
    f = fleets(cloud, ping_interval=1.0)
    sims = f.start(devices=specs(devices))
    assert f.wait_identified(N, timeout=15), f.counts()
    c = f.counts()
    assert (c["connected"], c["identified"], c["activations"], c["identifications"]) == (N, N, N, N)
    assert all(cloud.online(d["id"]) for d in devices)
    store = Store(data_dir)
    try:
        for sim in sims:
            row = store.device(sim.id)
            assert row["activated"] == 1 and row["token"] == sim.token
            assert (row["bssid"], row["rom_version"]) == (fake_mac(sim.id), simulate.ROM_VERSION)
    finally:
        store.close()

    api = Client("127.0.0.1", cloud.api_port, cloud.ca_file, timeout=10)
    owners = [api.authorize(sim.token) for sim in sims]

    def drive(owner):
        out = [api.rpc(owner, "LED_ON"), api.datapoint(owner, "plug-status"),
               api.datapoint(owner, "plug-status", {"x": 0}), api.datapoint(owner, "plug-status"),
               api.rpc(owner, "FLY")]
        return out

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(drive, owners))
    for on, get1, post0, get0, fly in results:
        for status, reply in (on, get1, post0, get0, fly):
            assert type(reply.pop("nonce")) is int and reply.pop("deliver_to_device") is True
            assert status == reply["status"]
        assert on == (200, {"status": 200})
        assert get1 == (200, {"status": 200, "datapoint": {"x": 1}})
        assert post0 == get0 == (200, {"status": 200, "datapoint": {"x": 0}})
        assert fly == (400, {"status": 400, "message": "unknown action"})
    assert [s.plug for s in sims] == [0] * N
    time.sleep(1.3)  # every device pings after a second of silence; the cloud answers
    c = f.counts()
    assert c["answered"] == 5 * N
    assert c["pings"] >= N, c
    assert wait_for(lambda: (lambda c: c["pongs"] == c["pings"])(f.counts()), 3), f.counts()
    assert (c["bad_frames"], c["dead_links"], c["reconnects"], c["rejected"]) == (0, 0, 0, 0)


def test_a_cloud_restart_brings_the_whole_fleet_back(start_cloud, make_device, fleets):
    old = start_cloud()
    devices = [make_device() for _ in range(N)]
    f = fleets(old)
    sims = f.start(devices=specs(devices))
    assert f.wait_identified(N, timeout=15), f.counts()
    owner = Client("127.0.0.1", old.api_port, old.ca_file).authorize(sims[0].token)
    old.stop()  # every socket dropped, like a killed process
    assert wait_for(lambda: f.counts()["connected"] == 0, 10), f.counts()
    time.sleep(0.8)  # a few refused reconnects while it is down
    assert f.counts()["connect_failures"] > 0
    new = start_cloud(tls_port=old.tls_port, api_port=old.api_port)
    t0 = time.monotonic()
    assert f.wait_identified(N, timeout=20), f.counts()
    back = time.monotonic() - t0
    c = f.counts()
    assert c["activations"] == N and c["identifications"] == 2 * N  # identify only: no second activation
    assert c["reconnects"] == N
    assert all(new.online(d["id"]) for d in devices)
    assert back < 10
    status, reply = Client("127.0.0.1", new.api_port, new.ca_file).rpc(owner, "LED_ON")
    assert (status, reply["status"]) == (200, 200)  # the owner key claimed before the restart


# ---- the command


def run_simulate(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "esplink.cloud.simulate", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def test_simulate_command_runs_a_fleet_against_a_running_cloud(cloud, data_dir):
    t0 = time.monotonic()
    run = run_simulate("--devices", 5, "--data", data_dir, "--duration", 3, "--every", 1, "--ping", 1)
    assert run.returncode == 0, run.stderr
    assert time.monotonic() - t0 < 15
    lines = run.stdout.splitlines()
    assert re.fullmatch(rf"simulate: 5 devices made in {re.escape(str(data_dir))} \(sim-[0-9a-f]{{6}}-0\.\.4,"
                        rf" ids 1\.\.5\); TLS to 127\.0\.0\.1:{cloud.tls_port}", lines[0]), lines[0]
    status = [ln for ln in lines if re.fullmatch(r"simulate: +[\d.]+ s  connected \d+/5  identified \d+"
                                                 r"  answered \d+  reconnects \d+  failed connects \d+", ln)]
    assert len(status) >= 2 and "connected 5/5  identified 5" in status[-1]
    summary = [ln for ln in lines if ln.startswith("simulate: summary")]
    assert len(summary) == 1
    assert re.search(r"5 devices, all identified after [\d.]+ s; identified at the end 5, activations 5,"
                     r" identifications 5, deliveries answered 0, reconnects 0, failed connects 0", summary[0])
    store = Store(data_dir)
    try:
        rows = store.devices()
    finally:
        store.close()
    assert len(rows) == 5 and all(re.fullmatch(r"sim-[0-9a-f]{6}-\d", r["name"]) for r in rows)
    assert all(r["activated"] == 1 and r["bssid"] == fake_mac(r["id"]) for r in rows)
    assert wait_for(lambda: not any(cloud.online(r["id"]) for r in rows), 5)  # gone with the command


def test_simulate_command_without_a_cloud_says_so(tmp_path):
    run = run_simulate("--devices", 2, "--data", tmp_path / "nothing")
    assert run.returncode == 1 and "no server.json" in run.stderr and run.stdout == ""


def test_register_adds_the_subcommand_with_its_defaults(capsys):
    parser = argparse.ArgumentParser(prog="esplink cloud")
    simulate.register(parser.add_subparsers(dest="cloud_command"))
    args = parser.parse_args(["simulate", "--devices", "3", "--ramp", "2"])
    assert (args.devices, args.ramp, args.duration, args.ping, args.port) == (3, 2.0, 0.0, 50.0, None)
    assert args.func is simulate.cmd_simulate
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("(default: 10)", "(default: 0.0)", "(default: 50.0)", "(default: 5.0)"):
        assert shown in text
