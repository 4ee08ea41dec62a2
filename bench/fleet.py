"""The cloud under a fleet: the local cloud as `esplink cloud serve` (its own process)
against simulated devices (esplink.cloud.simulate, in a second process), and Mosquitto
holding the same number of TLS connections as the yardstick for memory.

    .venv/bin/python bench/fleet.py

Measures: (a) devices connected over TLS at once, ramped up to 2000; (b) the cloud's
RSS per connected device; (c) REST RPC round trips per second and p95 with 1000 devices
online; (d) time for 1000 devices to re-identify after the cloud is killed and
restarted on the same ports; (e) Mosquitto's RSS per TLS connection (2000 minimal
MQTT 3.1.1 clients) and the ratio. Everything runs on 127.0.0.1 with free ports and a
temporary directory, and stops on its own. Exit status 1 only if something broke,
never for a missed target. Mosquitto is Debian's package, installed with apt-get
(as root, or with sudo) when missing; without it (e) is left out.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import multiprocessing
import os
import platform
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from esplink.cloud import protocol, simulate
from esplink.cloud.store import Store
from esplink.phone import new_token

DEVICES = 2000  # (a), (b), (e)
RAMP_S = 10.0  # connects spread over this long (200 a second)
RPC_DEVICES = 1000  # (c), (d)
RPC_THREADS = 8
RPC_S = 10.0
RPC_WARMUP_S = 1.0
SETTLE_S = 2.0  # after a ramp, before reading RSS
IDENTIFY_TIMEOUT_S = 180.0
STALL_S = 60.0  # no progress for this long: give up waiting
MQTT_KEEPALIVE = 60
ACTIONS = ("LED_ON", "LED_OFF")


class Broke(Exception):
    """Something did not work (not a missed target)."""


# ---- the machine

def rss_kb(pid) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Broke(f"no VmRSS for pid {pid}")


def cpu_s(pid) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def tcp_ext() -> dict:
    """Kernel counters: ListenOverflows/ListenDrops say SYNs or accepts were dropped
    because a listen queue was full."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            return dict(zip(names.split()[1:], map(int, values.split()[1:])))
    return {}


def listen_drops(before, after) -> int:
    return after.get("ListenDrops", 0) - before.get("ListenDrops", 0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return predicate()


# ---- the cloud, as a user runs it

class CloudProcess:
    def __init__(self, data: Path, log: Path):
        self.data, self.log_path = data, log
        self.proc = None
        self.ports = {"tls_port": 0, "plain_port": 0, "api_port": 0}

    def start(self):
        """Starts `esplink cloud serve` (the ports of the last run again, if any); the
        seconds until server.json names it."""
        t0 = time.monotonic()
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "esplink.cli", "cloud", "serve", "--data", str(self.data),
                 "--tls-port", str(self.ports["tls_port"]), "--plain-port", str(self.ports["plain_port"]),
                 "--api-port", str(self.ports["api_port"])],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()

        def ready():
            if self.proc.poll() is not None:
                raise Broke(f"the cloud exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                info = json.loads((self.data / "server.json").read_text())
            except (OSError, ValueError):
                return None
            return info if info.get("pid") == self.proc.pid else None

        info = wait_until(ready, 60)
        if not info:
            raise Broke("the cloud did not write server.json within 60 s:\n" + self.log_tail())
        self.ports = {k: info[k] for k in self.ports}
        return time.monotonic() - t0

    @property
    def pid(self):
        return self.proc.pid

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, n=30):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def problems(self):
        """(count, first) of the log's lines that speak of a failure."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return 0, None
        bad = [ln for ln in lines if re.search(r"Traceback|Error|ERROR|Exception|exception|failed", ln)]
        return len(bad), bad[0] if bad else None


# ---- Mosquitto

def mosquitto_binary():
    found = shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto") if os.path.exists(p)), None)
    if found:
        return found
    # Debian's package; apt takes its mirror from the machine's configuration
    sudo = [] if os.geteuid() == 0 else (["sudo", "-n"] if shutil.which("sudo") else None)
    if sudo is None:
        return None
    print("bench/fleet.py: installing Debian's mosquitto for the yardstick", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = sudo + ["apt-get", "install", "-y", "-q", "--no-install-recommends", "mosquitto"]
    if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
        subprocess.run(sudo + ["apt-get", "update", "-q"], env=env, capture_output=True)
        subprocess.run(cmd, env=env, capture_output=True)
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto",) if os.path.exists(p)), None)


class Mosquitto:
    def __init__(self, binary, tmp: Path, data: Path):
        self.port = free_port()
        self.conf = tmp / "mosquitto.conf"
        self.log_path = tmp / "mosquitto.log"
        lines = [f"listener {self.port} 127.0.0.1",
                 f"certfile {data / 'server.pem'}", f"keyfile {data / 'server.key'}",
                 "tls_version tlsv1.2",  # as the cloud's device port
                 "allow_anonymous true", "persistence false", "max_connections -1",
                 "log_dest stderr", "log_type error", "log_type warning"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to "mosquitto", who cannot read the key
        self.conf.write_text("\n".join(lines) + "\n")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def listening():
            if self.proc.poll() is not None:
                raise Broke(f"mosquitto exited ({self.proc.returncode}): {self.log_path.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False

        if not wait_until(listening, 20):
            self.stop()
            raise Broke("mosquitto did not listen within 20 s: " + self.log_path.read_text())
        self.pid = self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def mqtt_connect_packet(client_id: str, keepalive=MQTT_KEEPALIVE) -> bytes:
    """MQTT 3.1.1 CONNECT: protocol "MQTT" level 4, clean session, no will/user/password."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + keepalive.to_bytes(2, "big") + len(cid).to_bytes(2, "big") + cid
    assert len(body) < 128  # remaining length in one byte
    return b"\x10" + bytes([len(body)]) + body


CONNACK_OK = b"\x20\x02\x00\x00"
PINGREQ = b"\xc0\x00"


class MqttFleet:
    """Minimal MQTT clients that connect over TLS and then only keep the line alive."""

    def __init__(self, port, ca_file):
        self.port = port
        self.ctx = simulate.client_context(ca_file)
        self.tasks = []
        self.stats = {"connected": 0, "refused": 0, "failed": 0, "closed": 0}
        self.last_error = None

    async def start(self, n, ramp):
        loop = asyncio.get_running_loop()
        tag = os.getpid()
        for i in range(n):
            self.tasks.append(loop.create_task(self._client(f"bench-{tag}-{i}", ramp * i / n)))

    async def _client(self, client_id, delay):
        await asyncio.sleep(delay)
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", self.port, ssl=self.ctx, server_hostname="localhost"), 60)
            writer.write(mqtt_connect_packet(client_id))
            ack = await asyncio.wait_for(reader.readexactly(4), 60)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            self.stats["failed"] += 1
            self.last_error = repr(e)
            return
        if ack != CONNACK_OK:
            self.stats["refused"] += 1
            self.last_error = f"CONNACK {ack!r}"
            writer.transport.abort()
            return
        self.stats["connected"] += 1
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(64), MQTT_KEEPALIVE * 0.75)
                except asyncio.TimeoutError:
                    writer.write(PINGREQ)  # PINGRESP (d0 00) comes back; read and ignored
                    continue
                if not data:
                    self.stats["closed"] += 1
                    return
        except OSError as e:
            self.stats["closed"] += 1
            self.last_error = repr(e)
        finally:
            self.stats["connected"] -= 1
            writer.transport.abort()

    async def stop(self):
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []


# ---- the simulated devices' process

def _worker(conn):
    protocol.fit_for_a_fleet()
    asyncio.run(_worker_loop(conn))


async def _worker_loop(conn):
    loop = asyncio.get_running_loop()
    fleet = mqtt = None
    while True:
        cmd, args = await loop.run_in_executor(None, conn.recv)
        try:
            if cmd == "fleet":
                fleet = simulate.Fleet(*args[0], **args[1])
                result = None
            elif cmd == "start":
                await fleet.start(len(args[0]), args[0], args[1])
                result = None
            elif cmd == "counts":
                t = fleet.all_identified_at
                result = dict(fleet.counts(), errors=dict(fleet.errors), last_error=fleet.last_error,
                              all_identified_at=t, now=loop.time())
            elif cmd == "drop":
                await fleet.drop(args)
                result = None
            elif cmd == "stop":
                await fleet.stop()
                result = None
            elif cmd == "mqtt":
                mqtt = MqttFleet(*args[0])
                await mqtt.start(*args[1])
                result = None
            elif cmd == "mqtt_counts":
                result = dict(mqtt.stats, last_error=mqtt.last_error)
            elif cmd == "mqtt_stop":
                await mqtt.stop()
                result = None
            elif cmd == "rss":
                result = rss_kb(os.getpid())
            elif cmd == "quit":
                conn.send(None)
                return
            else:
                result = Broke(f"unknown command {cmd}")
        except Exception as e:  # told to the bench, which reports it
            result = Broke(f"{cmd}: {e!r}")
        conn.send(result)


class Worker:
    def __init__(self):
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker, args=(child,), daemon=True, name="fleet")
        self.proc.start()
        child.close()

    def __call__(self, cmd, args=None, timeout=120):
        self.conn.send((cmd, args))
        if not self.conn.poll(timeout):
            raise Broke(f"the simulator did not answer {cmd!r} within {timeout} s")
        result = self.conn.recv()
        if isinstance(result, Exception):
            raise result
        return result

    def close(self):
        if self.proc.is_alive():
            try:
                self("quit", timeout=60)
            except (Broke, OSError, EOFError):
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(5)


def wait_count(worker, key, target, cmd="counts", timeout=IDENTIFY_TIMEOUT_S):
    """Poll the worker until counts[key] >= target, or no progress for STALL_S, or
    timeout. (seconds, last counts)."""
    t0 = time.monotonic()
    best, best_at = -1, t0
    while True:
        c = worker(cmd)
        now = time.monotonic()
        if c[key] >= target:
            return now - t0, c
        if c[key] > best:
            best, best_at = c[key], now
        if now - best_at > STALL_S or now - t0 > timeout:
            return None, c
        time.sleep(0.05)


# ---- REST round trips

class Rest:
    """http.client over TLS, verifying the cloud's CA; keeps a connection when the
    server does, reconnects when it closes."""

    def __init__(self, port, ca_file):
        self.port = port
        self.ctx = simulate.client_context(ca_file)
        self.conn = None
        self.connects = 0

    def request(self, method, path, key=None, body=None):
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"token {key}"
        data = None if body is None else json.dumps(body).encode()
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=self.ctx)
            sock = self.conn.sock
            try:
                self.conn.request(method, path, body=data, headers=headers)
                if self.conn.sock is not sock:
                    self.connects += 1
                resp = self.conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise
                continue  # a kept connection the server had closed
            if resp.will_close:
                self.conn.close()
                self.conn = None
            try:
                reply = json.loads(raw)
            except ValueError:
                reply = {"raw": raw[:200].decode("latin-1")}
            return resp.status, reply

    def close(self):
        if self.conn:
            self.conn.close()


def claim_all(port, ca_file, tokens, threads=RPC_THREADS):
    """POST /v1/key/authorize/ for every token (as Client.authorize); the owner keys."""
    keys = [None] * len(tokens)
    failures = []

    def run(part):
        rest = Rest(port, ca_file)
        try:
            for i in part:
                status, reply = rest.request("POST", "/v1/key/authorize/", body={"token": tokens[i]})
                if status == 200:
                    keys[i] = reply["key"]["token"]
                else:
                    failures.append((status, reply))
        finally:
            rest.close()

    parts = [range(t, len(tokens), threads) for t in range(threads)]
    ts = [threading.Thread(target=run, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if failures:
        raise Broke(f"{len(failures)} of {len(tokens)} claims failed, e.g. HTTP {failures[0]}")
    return keys


def rpc_load(port, ca_file, keys, seconds=None, warmup=RPC_WARMUP_S, threads=RPC_THREADS):
    """`threads` clients doing REST RPCs back to back on random devices for `seconds`
    after `warmup`. (latencies of 200s, statuses counted, connects, elapsed)."""
    seconds = RPC_S if seconds is None else seconds
    lock = threading.Lock()
    times, statuses, connects = [], {}, [0]
    start = time.monotonic()
    measure_from, end = start + warmup, start + warmup + seconds

    def run(seed):
        rng = random.Random(seed)
        rest = Rest(port, ca_file)
        mine, counted = [], {}
        i = 0
        try:
            while True:
                t0 = time.monotonic()
                if t0 >= end:
                    break
                key = keys[rng.randrange(len(keys))]
                try:
                    status, reply = rest.request(
                        "GET", f"/v1/device/rpc/?deliver_to_device=true&action={ACTIONS[i % 2]}", key)
                    ok = status == 200 and reply.get("status") == 200 and reply.get("deliver_to_device") is True
                    label = "200" if ok else f"{status}"
                except (OSError, http.client.HTTPException) as e:
                    label = e.__class__.__name__
                    rest.close()
                    rest = Rest(port, ca_file)
                t1 = time.monotonic()
                i += 1
                if t0 >= measure_from:
                    counted[label] = counted.get(label, 0) + 1
                    if label == "200":
                        mine.append(t1 - t0)
        finally:
            rest.close()
            with lock:
                times.extend(mine)
                for k, v in counted.items():
                    statuses[k] = statuses.get(k, 0) + v
                connects[0] += rest.connects

    ts = [threading.Thread(target=run, args=(s,)) for s in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return times, statuses, connects[0], seconds


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))] if s else float("nan")


# ---- the run

def measure(tmp: Path) -> dict:
    r = {"limit": protocol.fit_for_a_fleet()}
    data = tmp / "cloud"
    t0 = time.monotonic()
    store = Store(data)
    try:
        made = [store.create_device(f"fleet-{i}") for i in range(DEVICES)]
    finally:
        store.close()
    r["create_s"] = time.monotonic() - t0
    devices = [(d["id"], d["master_key"], new_token()) for d in made]

    cloud = CloudProcess(data, tmp / "cloud.log")
    worker = Worker()
    try:
        measure_cloud(r, cloud, worker, data, devices)
        measure_mosquitto(r, worker, tmp, data)
    finally:
        cloud.stop()
        worker.close()
    return r


def measure_cloud(r, cloud, worker, data, devices):
    try:
        r["cloud_start_s"] = cloud.start()
        time.sleep(1.0)
        r["rss_idle"] = rss_kb(cloud.pid)
        host, tls_port, ca = "127.0.0.1", cloud.ports["tls_port"], data / "ca.pem"
        # the firmware's timings: ping after 50 s of silence, backoff 1 s doubling to 60 s
        worker("fleet", ((host, tls_port, str(ca)), {}))

        # (a), (b)
        drops0, cpu0 = tcp_ext(), cpu_s(cloud.pid)
        worker("start", (devices, RAMP_S))
        r["ramp_s"], c = wait_count(worker, "identified", DEVICES)
        r["ramp_counts"] = c
        r["ramp_cpu_s"] = cpu_s(cloud.pid) - cpu0
        r["ramp_listen_drops"] = listen_drops(drops0, tcp_ext())
        time.sleep(SETTLE_S)
        c = worker("counts")
        r["held"] = c["connected"], c["identified"]
        r["rss_full"] = rss_kb(cloud.pid)
        r["fleet_rss"] = worker("rss")

        # (c) with RPC_DEVICES online
        worker("drop", DEVICES - RPC_DEVICES)
        time.sleep(1.0)
        c = worker("counts")
        r["rpc_online"] = c["identified"]
        r["rss_half"] = rss_kb(cloud.pid)
        t0 = time.monotonic()
        keys = claim_all(cloud.ports["api_port"], ca, [d[2] for d in devices[:RPC_DEVICES]])
        r["claim_s"] = time.monotonic() - t0
        cpu0, answered0 = cpu_s(cloud.pid), c["answered"]
        times, statuses, connects, seconds = rpc_load(cloud.ports["api_port"], ca, keys)
        r["rpc"] = {"times": times, "statuses": statuses, "connects": connects, "seconds": seconds,
                    "cpu_s": cpu_s(cloud.pid) - cpu0}
        c = worker("counts")
        r["rpc"]["answered"] = c["answered"] - answered0
        r["rpc"]["online_after"] = c["identified"]

        # (d) kill -9 and restart on the same ports
        cloud.kill()
        t_kill = time.monotonic()
        gone = wait_until(lambda: worker("counts")["connected"] == 0, 60)
        r["restart_noticed_s"] = time.monotonic() - t_kill if gone else None
        idents0 = worker("counts")["identifications"]
        drops0 = tcp_ext()
        t_restart = time.monotonic()
        r["restart_listen_s"] = cloud.start()
        took, c = wait_count(worker, "identified", RPC_DEVICES)
        r["restart_s"] = None if took is None else time.monotonic() - t_restart
        r["restart_counts"] = c
        r["restart_down_s"] = t_restart - t_kill
        r["restart_idents"] = c["identifications"] - idents0
        r["restart_listen_drops"] = listen_drops(drops0, tcp_ext())
        time.sleep(SETTLE_S)
        r["rss_restarted"] = rss_kb(cloud.pid), worker("counts")["identified"]
        worker("stop")
        r["cloud_problems"] = cloud.problems()
    finally:
        cloud.stop()


def measure_mosquitto(r, worker, tmp, data):
    """(e): Mosquitto holding DEVICES TLS connections."""
    binary = mosquitto_binary()
    if binary is None:
        r["mqtt"] = None
    else:
        mq = Mosquitto(binary, tmp, data)
        try:
            time.sleep(1.0)
            idle = rss_kb(mq.pid)
            worker("mqtt", ((mq.port, str(data / "ca.pem")), (DEVICES, RAMP_S)))
            took, c = wait_count(worker, "connected", DEVICES, cmd="mqtt_counts")
            time.sleep(SETTLE_S)
            c = worker("mqtt_counts")
            r["mqtt"] = {"idle": idle, "full": rss_kb(mq.pid), "connected": c["connected"], "took": took,
                         "counts": c, "version": subprocess.run([binary, "-h"], capture_output=True,
                                                                text=True).stdout.splitlines()[0]}
            worker("mqtt_stop")
        finally:
            mq.stop()


def table(r) -> str:
    kb = lambda n: f"{n / 1024:.1f} MB" if n >= 10240 else f"{n} KB"
    ra = r["ramp_counts"]
    held_c, held_i = r["held"]
    per_dev = (r["rss_full"] - r["rss_idle"]) / max(held_i, 1)
    rss_back, online_back = r["rss_restarted"]
    rpc = r["rpc"]
    times = rpc["times"]
    ok = len(times)
    total = sum(rpc["statuses"].values())
    failed = {k: v for k, v in rpc["statuses"].items() if k != "200"}
    rc = r["restart_counts"]
    mq = r["mqtt"]
    rows = [
        (f"(a) devices connected over TLS at once, ramped up over {RAMP_S:g} s",
         f"{held_i} of {DEVICES} identified ({held_c} connected)", f"{DEVICES}"),
        ("  time from the first connect to all identified",
         f"{r['ramp_s']:.1f} s" if r["ramp_s"] is not None else
         f"not all: {ra['identified']} identified when progress stopped", ""),
        ("  failed connects / reconnects during the ramp",
         f"{ra['connect_failures']} / {ra['reconnects']}", "0 / 0"),
        ("  cloud CPU for the ramp (activate + identify each)",
         f"{r['ramp_cpu_s']:.1f} s ({1000 * r['ramp_cpu_s'] / max(held_i, 1):.1f} ms a device)", ""),
        (f"(b) cloud RSS: idle → {held_i} devices", f"{kb(r['rss_idle'])} → {kb(r['rss_full'])}", ""),
        ("  per connected device", f"{per_dev:.0f} KB", ""),
        (f"  RSS after dropping to {r['rpc_online']} devices (freed memory stays with the process)",
         kb(r["rss_half"]), ""),
        (f"(c) REST RPCs per second, {RPC_THREADS} client threads, {r['rpc_online']} devices online, "
         f"random device each, {rpc['seconds']:g} s", f"{ok / rpc['seconds']:.0f}", ""),
        ("  round trip median / p95", f"{1000 * statistics.median(times):.1f} / {1000 * pct(times, 0.95):.1f} ms"
         if times else "none succeeded", ""),
        ("  failed RPCs", f"{sum(failed.values())} of {total}" + (
            f" ({', '.join(f'{k}: {v}' for k, v in sorted(failed.items()))})" if failed else ""), "0"),
        ("  TLS connections opened by the clients", f"{rpc['connects']} for {total} requests", ""),
        ("  cloud CPU per RPC", f"{1000 * rpc['cpu_s'] / max(total, 1):.1f} ms", ""),
        (f"(d) cloud killed (SIGKILL) and restarted on the same ports: all {RPC_DEVICES} re-identified",
         f"{r['restart_s']:.1f} s after the restart began" if r["restart_s"] is not None else
         f"not all: {rc['identified']} when progress stopped", ""),
        ("  of which the cloud's own start (process start → listening)", f"{r['restart_listen_s']:.1f} s", ""),
        ("  after the kill: every device saw its socket close / the restart began",
         f"{r['restart_noticed_s']:.1f} / {r['restart_down_s']:.1f} s" if r["restart_noticed_s"] is not None
         else f"not all noticed / {r['restart_down_s']:.1f} s", ""),
        (f"  cloud RSS after the restart with {online_back} devices (a fresh process)",
         f"{kb(rss_back)} ({(rss_back - r['rss_idle']) / max(online_back, 1):.0f} KB a device over the first idle)", ""),
        ("  re-identifications / second activations", f"{r['restart_idents']} / {rc['activations'] - DEVICES}", ""),
        ("  SYNs dropped by full listen queues (kernel ListenDrops), ramp / restart",
         f"{r['ramp_listen_drops']} / {r['restart_listen_drops']}", "0"),
    ]
    if mq:
        mq_per = (mq["full"] - mq["idle"]) / max(mq["connected"], 1)
        rows += [
            (f"(e) Mosquitto ({mq['version'].split()[-1]}): TLS connections held (MQTT 3.1.1 CONNECT, keepalive 60)",
             f"{mq['connected']} of {DEVICES}" + (f" in {mq['took']:.1f} s" if mq["took"] else ""), f"{DEVICES}"),
            ("  Mosquitto RSS: idle → full", f"{kb(mq['idle'])} → {kb(mq['full'])}", ""),
            ("  per connection", f"{mq_per:.0f} KB", ""),
            ("  cloud per device / Mosquitto per connection", f"{per_dev / mq_per:.1f}×" if mq_per > 0 else "n/a", ""),
        ]
    else:
        rows.append(("(e) Mosquitto", "not measured: not installed and apt-get not possible", ""))
    out = ["| measure | value | target |", "|---|---|---|"] + ["| %s | %s | %s |" % row for row in rows]
    count, first = r["cloud_problems"]
    notes = [
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.machine()}; "
        f"open-files limit {r['limit']}; loopback only. The cloud (`esplink cloud serve`, one process), "
        f"the simulated devices (one asyncio process) and the REST clients ({RPC_THREADS} threads in the "
        "bench process) share the 2 cores, so every figure is a floor for the cloud on its own machine.",
        f"Devices: esplink.cloud.simulate with the firmware's timings (ping after 50 s of silence, backoff "
        f"1 s doubling to 60 s with jitter); TLS 1.2 to the device port, CA and name verified. "
        f"The simulator's own RSS with {DEVICES} devices: {kb(r['fleet_rss'])}. "
        f"{DEVICES} devices made in the store in {r['create_s']:.1f} s; cloud start {r['cloud_start_s']:.1f} s.",
        "RSS is VmRSS from /proc; per device = (RSS with N online − idle) / N. RPCs: GET "
        "/v1/device/rpc/?deliver_to_device=true&action=LED_ON|LED_OFF with each device's owner key "
        f"(claimed via POST /v1/key/authorize/ in {r['claim_s']:.1f} s for {RPC_DEVICES}), "
        f"after {RPC_WARMUP_S:g} s of warm-up; a success is HTTP 200 with the device's 200 reply.",
        "The device listeners take a backlog of 1024 (server.BACKLOG; asyncio's default of 100 dropped 153 SYNs "
        "of 1000 at a restart, each a 1 s retry), and every TLS connection a 16 KB read buffer "
        "(protocol.TLS_READ_BUFFER; CPython's 256 KB made 285 KB a device).",
        f"Cloud log: {count} lines mention an error" + (f", first: {first[:200]}" if first else "") + ".",
    ]
    return "\n".join(out + notes)


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))  # run the finally blocks
    try:
        with tempfile.TemporaryDirectory(prefix="esplink-bench-fleet-") as tmp:
            results = measure(Path(tmp))
    except (Broke, OSError) as e:
        print(f"bench/fleet.py: broke: {e}", file=sys.stderr)
        return 1
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
