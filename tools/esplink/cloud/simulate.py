"""A fleet of simulated devices in one asyncio process, for measuring the cloud.

Each device talks to the cloud's device port over TLS as the firmware does
(firmware/espcloud/link.py, session.py, actions.py): one frame per write, activate
(once) then identify, a ping after 50 s of silence and a dead link if that one goes
unanswered too, an answer to every delivery, and capped exponential backoff with jitter
after a lost connection (1 s doubling to 60 s, a wait between half and all of it).

    esplink cloud simulate --devices 200 --data DIR --ramp 10
    python -m esplink.cloud.simulate --devices 200 --data DIR      (the same, standalone)

In code: Fleet (on a running loop) or FleetThread (a Fleet on its own thread).
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import random
import secrets
import signal
import ssl
import sys
from pathlib import Path

from esplink import CommandError
from esplink.cloud import default_data_dir, protocol
from esplink.cloud.harness import LoopThread, value
from esplink.phone import new_token

# the firmware's timings (espcloud/session.py, espcloud/link.py)
PING_S = 50.0
ACTIVATE_RETRY_S = 50.0
BACKOFF_S = 1.0
BACKOFF_MAX_S = 60.0
CONNECT_TIMEOUT_S = 30.0
REBOOT_S = 1.0  # sys_reboot: the answer goes out, the board resets about a second later
ROM_VERSION = "v0.1.0t23701(a)"  # firmware/espcloud/link.py's
REPLACED_TEXT = "close by other peer login"
READ_SIZE = 4096

COUNTS = ("devices", "connected", "identified", "identifications", "activations", "answered",
          "reconnects", "attempts", "connect_failures", "closed_by_cloud", "dead_links",
          "rejected", "replaced", "bad_frames", "pings", "pongs")


def fake_mac(device_id: int) -> str:
    """A station MAC in Espressif's 18:fe:34 block, one per device id."""
    n = device_id & 0xFFFFFF
    return "18:fe:34:%02x:%02x:%02x" % (n >> 16, (n >> 8) & 0xFF, n & 0xFF)


def nonce() -> int:
    return secrets.randbelow(2 ** 31)


def client_context(ca_file) -> ssl.SSLContext:
    """Verifies the cloud's chain and name against its CA (as certs.client_context,
    without loading `cryptography`: `esplink` imports this module at every start)."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def _activated(msg) -> bool:
    for part in ("device", "key"):
        inner = msg.get(part)
        if isinstance(inner, dict) and inner.get("activate_status") == 1:
            return True
    return False


class SimDevice:
    """One simulated board: its credentials, its plug, and its link's state."""

    def __init__(self, fleet, device_id, master_key, token=None, activated=False):
        self.fleet = fleet
        self.id, self.key = int(device_id), master_key
        self.token = token or new_token()
        self.bssid = fake_mac(self.id)
        self.activated = bool(activated)  # "persisted": survives reconnects
        self.plug = 0
        self.failures = 0
        self.connected = self.identified = False
        self.sessions = 0  # TLS connections made
        self.waiting = None  # nonce of the activate or identify in flight
        self.failed_at = None  # when activation was last refused
        self.rebooting = False
        self.task = None

    # the link, forever (espcloud/link.py Link.run)

    async def run(self, delay=0.0):
        if delay > 0:
            await asyncio.sleep(delay)
        f = self.fleet
        while True:
            try:
                await self._connection()
            except Exception as e:  # TCP, TLS, a stalled cloud, or a surprise: never give up
                f._error(e)
            if self.rebooting:
                self.rebooting = False
                await asyncio.sleep(REBOOT_S)  # boot and join again; no backoff
                continue
            ceiling = min(f.backoff_max, f.backoff * 2 ** min(self.failures, 6))
            self.failures += 1
            await asyncio.sleep(ceiling / 2 + random.random() * ceiling / 2)

    async def _connection(self):
        f, s = self.fleet, self.fleet.stats
        s["attempts"] += 1
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                f.host, f.port, ssl=f.ctx, server_hostname=f.server_hostname,
                ssl_handshake_timeout=f.connect_timeout), f.connect_timeout)
        except Exception:
            s["connect_failures"] += 1
            raise
        self.connected = True
        s["connected"] += 1
        if self.sessions:
            s["reconnects"] += 1
        self.sessions += 1
        try:
            await self._talk(reader, writer)
        finally:
            self.connected = False
            s["connected"] -= 1
            if self.identified:
                self.identified = False
                s["identified"] -= 1
            writer.transport.abort()  # the board drops the socket; nothing more to say

    async def _send(self, writer, msg):
        writer.write(protocol.encode(msg))  # one frame, one write
        await asyncio.wait_for(writer.drain(), self.fleet.connect_timeout)

    async def _login(self, writer):
        n = nonce()
        if self.activated:
            msg = protocol.device_request(n, "GET", protocol.IDENTIFY, self.key)
        else:
            msg = protocol.device_request(n, "POST", protocol.ACTIVATE, self.key, {
                "encrypt_method": "PLAIN", "token": self.token, "bssid": self.bssid,
                "rom_version": ROM_VERSION})
            self.failed_at = None
        self.waiting = n
        await self._send(writer, msg)

    async def _talk(self, reader, writer):
        f, s = self.fleet, self.fleet.stats
        loop = asyncio.get_running_loop()
        framer = protocol.Framer()
        self.waiting, self.failed_at = None, None
        pinged = False
        last_rx = loop.time()
        await self._login(writer)
        while True:
            now = loop.time()
            if self.failed_at is not None and now - self.failed_at >= f.activate_retry:
                await self._login(writer)
            if now - last_rx >= f.ping_interval:
                if pinged:
                    s["dead_links"] += 1  # "cloud: no answer to ping"
                    return
                await self._send(writer, protocol.device_request(nonce(), "POST", protocol.PING, self.key))
                s["pings"] += 1
                pinged, last_rx = True, now
            wait = last_rx + f.ping_interval - now
            if self.failed_at is not None:
                wait = min(wait, self.failed_at + f.activate_retry - now)
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), max(wait, 0.001))
            except asyncio.TimeoutError:
                continue
            if not data:
                s["closed_by_cloud"] += 1
                return
            last_rx, pinged = loop.time(), False  # anything at all proves the link alive
            for line, oversize in framer.feed(data):
                if not line.strip():
                    continue
                try:
                    msg = None if oversize else json.loads(line)
                except ValueError:
                    msg = None
                if not isinstance(msg, dict):
                    s["bad_frames"] += 1
                    continue
                if await self._receive(writer, msg):
                    return

    async def _receive(self, writer, msg) -> bool:
        """One frame from the cloud (espcloud/session.py receive); True ends the link."""
        f, s = self.fleet, self.fleet.stats
        if msg.get("deliver_to_device") is True and "path" in msg:
            reply = self.answer(msg)
            await self._send(writer, reply)
            s["answered"] += 1
            if self.rebooting:
                await asyncio.sleep(REBOOT_S)
                return True
            return False
        text = msg.get("message")
        if isinstance(text, str) and REPLACED_TEXT in text:
            s["replaced"] += 1
            self.failures = 5  # ~30 s before taking the line back
            return True
        if text == "ping success":
            s["pongs"] += 1
        if self.waiting is None or msg.get("nonce") != self.waiting:
            return False  # a ping reply, or a stale answer
        self.waiting = None
        status = msg.get("status")
        if not self.activated:
            if status == 200 and _activated(msg):
                self.activated = True
                s["activations"] += 1
                await self._login(writer)
                return False
            if status in (401, 403):
                s["rejected"] += 1
                f._error(f"activate refused ({status}): {msg.get('message', '')}")
                return True
            self.failed_at = asyncio.get_running_loop().time()
            f._error(f"activate failed ({status}): {msg.get('message', '')}")
            return False
        if status == 200:
            self.identified = True
            self.failures = 0
            s["identified"] += 1
            s["identifications"] += 1
            f._identified()
            return False
        self.activated = False  # the cloud no longer knows us as activated
        s["rejected"] += 1
        f._error(f"identify refused ({status}): {msg.get('message', '')}")
        return True

    # the board's actions (espcloud/actions.py)

    def answer(self, msg) -> dict:
        n = msg.get("nonce")
        if type(n) is not int:
            n = 0
        path, method = msg.get("path"), msg.get("method")
        get = msg.get("get") if isinstance(msg.get("get"), dict) else {}
        if path == protocol.RPC:
            action = get.get("action")
            if action in ("LED_ON", "LED_OFF"):
                self.plug = int(action == "LED_ON")
                return protocol.delivery_reply(n, 200)
            if action == "sys_reboot":
                self.rebooting = True
                return protocol.delivery_reply(n, 200)
            return protocol.delivery_reply(n, 400, message="unknown action")
        stream = protocol.datastream(path) if isinstance(path, str) else None
        if stream is None:
            return protocol.delivery_reply(n, 400, message="unknown path")
        if stream != "plug-status":
            return protocol.delivery_reply(n, 400, message="unknown datastream")
        if method == "POST":
            body = msg.get("body")
            point = body.get("datapoint") if isinstance(body, dict) else None
            x = point.get("x") if isinstance(point, dict) else None
            if type(x) is not int or not 0 <= x <= 1:
                return protocol.delivery_reply(n, 400, message="datapoint x must be 0 or 1")
            self.plug = x
        elif method != "GET":
            return protocol.delivery_reply(n, 400, message="method must be GET or POST")
        return protocol.delivery_reply(n, 200, datapoint={"x": self.plug})


class Fleet:
    """Simulated devices on the running event loop. Counts are in `stats` (see counts())."""

    def __init__(self, host="127.0.0.1", port=8443, ca_file="ca.pem", server_hostname=None, *,
                 ping_interval=PING_S, activate_retry=ACTIVATE_RETRY_S, backoff=BACKOFF_S,
                 backoff_max=BACKOFF_MAX_S, connect_timeout=CONNECT_TIMEOUT_S):
        protocol.fit_for_a_fleet()  # thousands of client sockets
        self.host, self.port = host, port
        self.server_hostname = server_hostname or default_server_name(host)
        self.ctx = client_context(ca_file)
        self.ping_interval, self.activate_retry = ping_interval, activate_retry
        self.backoff, self.backoff_max = backoff, backoff_max
        self.connect_timeout = connect_timeout
        self.devices: list[SimDevice] = []
        self.stats = dict.fromkeys(COUNTS, 0)
        self.errors = collections.Counter()  # kind -> how many
        self.last_error = None
        self.started_at = None
        self.all_identified_at = None  # loop time when every device was first identified at once

    async def start(self, n=None, devices=(), ramp=0.0) -> list[SimDevice]:
        """Start `n` devices from `devices`: (device_id, master_key, token[, activated]);
        a token of None gets a fresh one. Connects are spread over `ramp` seconds. Returns
        at once; wait_identified() waits for them."""
        devices = list(devices)
        n = len(devices) if n is None else n
        if n > len(devices):
            raise ValueError(f"{n} devices wanted, {len(devices)} given")
        loop = asyncio.get_running_loop()
        if self.started_at is None:
            self.started_at = loop.time()
        self.all_identified_at = None
        new = []
        for i, spec in enumerate(devices[:n]):
            dev = SimDevice(self, *spec)
            dev.task = loop.create_task(dev.run(ramp * i / n if ramp else 0.0))
            new.append(dev)
        self.devices += new
        self.stats["devices"] = len(self.devices)
        return new

    @property
    def connected(self) -> int:
        return self.stats["connected"]

    @property
    def identified(self) -> int:
        return self.stats["identified"]

    def counts(self) -> dict:
        return dict(self.stats)

    async def wait_identified(self, count=None, timeout=30.0) -> bool:
        """True once `count` (default: all) devices are identified at the same time."""
        count = len(self.devices) if count is None else count
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while self.stats["identified"] < count:
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.02)
        return True

    async def drop(self, count):
        """Stop the last `count` devices (their sockets closed), as boards switched off."""
        gone, self.devices = self.devices[len(self.devices) - count:], self.devices[:len(self.devices) - count]
        await _cancel([d.task for d in gone])
        self.stats["devices"] = len(self.devices)

    async def stop(self):
        await self.drop(len(self.devices))

    def _identified(self):
        if self.all_identified_at is None and self.stats["identified"] == len(self.devices):
            self.all_identified_at = asyncio.get_running_loop().time()

    def _error(self, e):
        text = e if isinstance(e, str) else f"{e.__class__.__name__}: {e}"
        self.errors[text.split(":")[0]] += 1
        self.last_error = text


async def _cancel(tasks):
    for t in tasks:
        t.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def default_server_name(host) -> str:
    """The name to verify: the cloud's certificate always has "localhost"."""
    return "localhost" if host in ("127.0.0.1", "::1", "localhost", "") else host


class FleetThread(LoopThread):
    """A Fleet on its own event loop and thread (tests, benches). Same arguments."""

    def __init__(self, *args, **kw):
        super().__init__("esplink-fleet")
        self.fleet = Fleet(*args, **kw)

    def start(self, n=None, devices=(), ramp=0.0) -> list[SimDevice]:
        return self.call(self.fleet.start(n, devices, ramp))

    def counts(self) -> dict:
        return self.call(value(self.fleet.counts))

    def wait_identified(self, count=None, timeout=30.0) -> bool:
        return self.call(self.fleet.wait_identified(count, timeout), timeout + 10)

    def stop(self):
        self.finish(self.fleet.stop, 30)


# ---- `esplink cloud simulate`

def _server_info(data: Path) -> dict:
    try:
        info = json.loads((data / "server.json").read_text())
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _status(fleet, elapsed) -> str:
    c = fleet.stats
    return (f"simulate: {elapsed:6.1f} s  connected {c['connected']}/{c['devices']}"
            f"  identified {c['identified']}  answered {c['answered']}  reconnects {c['reconnects']}"
            f"  failed connects {c['connect_failures']}")


def cmd_simulate(args):
    if args.devices < 1:
        raise CommandError("--devices must be at least 1")
    info = _server_info(args.data)
    host = args.host or info.get("host") or "127.0.0.1"
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    port = args.port or info.get("tls_port")
    if not port:
        raise CommandError(f"no device port: no server.json in {args.data} (is the cloud running?"
                           f" esplink cloud serve --data {args.data}), and no --port")
    ca = args.data / "ca.pem"
    if not ca.exists():
        raise CommandError(f"no CA in {args.data} (ca.pem): the cloud makes it when it first starts")
    limit = protocol.fit_for_a_fleet()
    if limit < args.devices + 16:
        print(f"simulate: warning: open-files limit {limit} is below {args.devices} sockets", file=sys.stderr)
    from esplink.cloud.store import Store
    store = Store(args.data)
    prefix = f"sim-{secrets.token_hex(3)}"
    try:
        made = [store.create_device(f"{prefix}-{i}") for i in range(args.devices)]
    finally:
        store.close()
    devices = [(d["id"], d["master_key"], new_token()) for d in made]
    print(f"simulate: {len(devices)} devices made in {args.data} ({prefix}-0..{len(devices) - 1},"
          f" ids {devices[0][0]}..{devices[-1][0]}); TLS to {host}:{port}", flush=True)
    try:
        asyncio.run(_simulate(args, host, port, ca, devices))
    except KeyboardInterrupt:
        pass
    return 0


async def _simulate(args, host, port, ca, devices):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    fleet = Fleet(host, port, ca, args.server_name, ping_interval=args.ping)
    t0 = loop.time()
    await fleet.start(len(devices), devices, args.ramp)
    try:
        while True:
            elapsed = loop.time() - t0
            left = args.duration - elapsed if args.duration else args.every
            if left <= 0:
                break
            try:
                await asyncio.wait_for(stop.wait(), min(args.every, left))
                break
            except asyncio.TimeoutError:
                pass
            print(_status(fleet, loop.time() - t0), flush=True)
    finally:
        elapsed = loop.time() - t0
        counts, errors, at = fleet.counts(), dict(fleet.errors), fleet.all_identified_at
        await fleet.stop()
    when = f"all identified after {at - t0:.1f} s" if at is not None else "never all identified at once"
    print(f"simulate: summary after {elapsed:.1f} s: {counts['devices']} devices, {when};"
          f" identified at the end {counts['identified']}, activations {counts['activations']},"
          f" identifications {counts['identifications']}, deliveries answered {counts['answered']},"
          f" reconnects {counts['reconnects']}, failed connects {counts['connect_failures']},"
          f" closed by the cloud {counts['closed_by_cloud']}, dead links {counts['dead_links']},"
          f" refused {counts['rejected']}, bad frames {counts['bad_frames']}", flush=True)
    if errors:
        print("simulate: errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(errors.items())), flush=True)


def add_arguments(p):
    p.add_argument("--devices", type=int, default=10, metavar="N",
                   help="how many devices to make in the cloud's store and run (default: %(default)s)")
    p.add_argument("--data", type=Path, default=default_data_dir(), metavar="DIR",
                   help="the cloud's data directory: server.json (host, ports), ca.pem, cloud.db"
                        " (default: %(default)s)")
    p.add_argument("--host", default=None,
                   help="the cloud's host (default: server.json's, else 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, metavar="N",
                   help="the cloud's device TLS port (default: server.json's tls_port)")
    p.add_argument("--server-name", default=None, metavar="NAME",
                   help="TLS name to verify (default: localhost for a loopback host, else the host)")
    p.add_argument("--ramp", type=float, default=0.0, metavar="S",
                   help="spread the first connects over S seconds (default: %(default)s)")
    p.add_argument("--duration", type=float, default=0.0, metavar="S",
                   help="run for S seconds, 0 = until Ctrl-C (default: %(default)s)")
    p.add_argument("--ping", type=float, default=PING_S, metavar="S",
                   help="silence before a device pings, as the firmware (default: %(default)s)")
    p.add_argument("--every", type=float, default=5.0, metavar="S",
                   help="seconds between status lines (default: %(default)s)")
    p.set_defaults(func=cmd_simulate)


def register(subparsers):
    """Adds `simulate` to `esplink cloud`'s subcommands."""
    p = subparsers.add_parser("simulate", help="a fleet of simulated devices against the cloud",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m esplink.cloud.simulate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except CommandError as e:
        print(f"simulate: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
