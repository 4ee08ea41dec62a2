"""`esplink cloud ...`: run the local cloud, make devices, push RPCs to them."""
import argparse
import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from esplink import CommandError
from esplink.cloud import default_data_dir, simulate
from esplink.cloud.store import Store

# the server and client (cryptography) load in the commands that use them:
# `esplink` imports every subcommand's module at start


def _store(data: Path, create=False) -> Store:
    if not create and not (data / "cloud.db").exists():
        raise CommandError(f"no cloud data in {data} (esplink cloud device create --data {data})")
    return Store(data)


def running_server(data: Path) -> dict:
    """server.json of the live server using `data`; CommandError if there is none."""
    try:
        info = json.loads((data / "server.json").read_text())
        os.kill(info["pid"], 0)
    except PermissionError:
        pass  # alive, another user's
    except (OSError, ValueError, KeyError, TypeError):
        raise CommandError(f"no cloud server running for {data} (start one: esplink cloud serve"
                           f" --data {data})") from None
    if info["host"] in ("", "0.0.0.0"):
        info["host"] = "127.0.0.1"
    elif info["host"] == "::":
        info["host"] = "::1"
    return info


def client_for(data: Path, timeout=30.0):
    from esplink.cloud.client import Client
    info = running_server(data)
    return Client(info["host"], info["api_port"], data / "ca.pem", timeout)


def cmd_serve(args):
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s esplink cloud: %(message)s")
    try:
        asyncio.run(_serve(args))
    except OSError as e:
        raise CommandError(f"cannot start the cloud: {e}")
    return 0


async def _serve(args):
    from esplink.cloud.server import Cloud
    cloud = Cloud(args.data, args.host, args.tls_port, args.plain_port, args.api_port,
                  args.rpc_timeout, args.cert_name)
    await cloud.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"esplink cloud on {cloud.host}: device TLS port {cloud.tls_port}, plain TCP port"
          f" {cloud.plain_port}, REST API https port {cloud.api_port}")
    print(f"boards verify the cloud with CA: {os.path.abspath(cloud.paths.ca_der)}"
          f" (PEM: {cloud.paths.ca_pem.name})")
    print(f"data: {os.path.abspath(cloud.data_dir)} (server.json has the ports)", flush=True)
    try:
        await stop.wait()
    finally:
        await cloud.stop()
    print("esplink cloud: stopped", flush=True)


def cmd_device_create(args):
    store = _store(args.data, create=True)
    try:
        dev = store.create_device(args.name)
    except ValueError as e:
        raise CommandError(str(e))
    finally:
        store.close()
    print(f"id: {dev['id']}")
    print(f"name: {dev['name']}")
    # the one place the key is shown: it has to reach the board (flash --device-key)
    print(f"master device key: {dev['master_key']}")
    return 0


def cmd_devices(args):
    if not (args.data / "cloud.db").exists():
        print("no devices")
        return 0
    store = _store(args.data)
    try:
        devices = store.devices()
    finally:
        store.close()
    rows = [("id", "name", "activated", "online", "last seen (UTC)")] + [
        (str(d["id"]), d["name"], "yes" if d["activated"] else "no",
         "yes" if d["online"] else "no", d["last_seen"] or "never") for d in devices]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def _pairs(items, reserved=()) -> dict:
    """KEY=VALUE arguments as a dict; ValueError names the bad one."""
    pairs = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k or k in reserved:
            extra = f" (not {' or '.join(reserved)})" if reserved else ""
            raise CommandError(f"bad parameter {item!r}: want KEY=VALUE{extra}")
        pairs[k] = v
    return pairs


def _device(args) -> dict:
    store = _store(args.data)
    try:
        dev = store.find_device(args.device)
    finally:
        store.close()
    if dev is None:
        raise CommandError(f"404 unknown device {args.device!r} (esplink cloud devices --data {args.data})")
    return dev


def _answer(what, dev, status, reply):
    if not 200 <= status < 300:
        raise CommandError(f"{what} on device {dev['id']} ({dev['name']}) failed:"
                           f" HTTP {status} {reply.get('message', '')}".rstrip())
    print(json.dumps(reply, sort_keys=True))
    return 0


def cmd_rpc(args):
    params = _pairs(args.params, ("action", "deliver_to_device"))
    dev = _device(args)
    status, reply = client_for(args.data, args.timeout).rpc(dev["master_key"], args.action, args.method, **params)
    return _answer(f"rpc {args.action}", dev, status, reply)


def _number(text):
    """Datapoint values are numbers on the ESP cloud (x, y, z, k, v); anything else stays text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text


def cmd_datapoint(args):
    values = {k: _number(v) for k, v in _pairs(args.values).items()}
    dev = _device(args)
    client = client_for(args.data, args.timeout)
    status, reply = client.datapoint(dev["master_key"], args.stream, values or None, deliver=not args.stored)
    return _answer(f"datapoint {args.stream}", dev, status, reply)


def cmd_authorize(args):
    print(f"owner key: {client_for(args.data).authorize(args.token)}")
    return 0


def _port(text):
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port: {text!r} (0 = any free one)")
    return int(text)


def register(subparsers):
    p = subparsers.add_parser("cloud", help="the local ESP cloud: server, devices, RPC")
    sub = p.add_subparsers(dest="cloud_command", required=True)
    data = argparse.ArgumentParser(add_help=False)
    data.add_argument("--data", type=Path, default=default_data_dir(), metavar="DIR",
                      help="state directory (default: env ESPLINK_CLOUD_DIR, else ~/.local/share/esplink/cloud)")

    s = sub.add_parser("serve", parents=[data], help="run the cloud (device sockets and REST API)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--tls-port", type=_port, default=8443, metavar="N", help="devices' TLS port; 0 = any free one")
    s.add_argument("--plain-port", type=_port, default=8000, metavar="N", help="devices' plain TCP port (no TLS)")
    s.add_argument("--api-port", type=_port, default=9443, metavar="N", help="HTTPS port: REST API and web console")
    s.add_argument("--cert-name", action="append", default=[], metavar="NAME",
                   help="extra DNS name or IP for the server certificate (repeatable)")
    s.add_argument("--rpc-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="how long an RPC waits for the device (then HTTP 504)")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_serve)

    dev = sub.add_parser("device", help="manage devices").add_subparsers(dest="device_command", required=True)
    c = dev.add_parser("create", parents=[data], help="make a device; prints its master device key")
    c.add_argument("--name", help="unique name (default device<id>)")
    c.set_defaults(func=cmd_device_create)

    sub.add_parser("devices", parents=[data], help="list devices").set_defaults(func=cmd_devices)

    r = sub.add_parser("rpc", parents=[data], help="push an RPC to a device, print its reply")
    r.add_argument("device", metavar="DEVICE", help="device id or name")
    r.add_argument("action")
    r.add_argument("params", nargs="*", metavar="KEY=VALUE")
    r.add_argument("--method", choices=("GET", "POST"), default="GET", help="HTTP method the device sees")
    r.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the cloud's answer (the server gives up first,"
                        " with 504, after its --rpc-timeout)")
    r.set_defaults(func=cmd_rpc)

    d = sub.add_parser("datapoint", parents=[data], help="read a datastream's latest datapoint on a device, or"
                       " write one (with KEY=VALUE)")
    d.add_argument("device", metavar="DEVICE", help="device id or name")
    d.add_argument("stream", metavar="STREAM", help="datastream name, e.g. light")
    d.add_argument("values", nargs="*", metavar="KEY=VALUE", help="datapoint fields to write, e.g. x=1")
    d.add_argument("--stored", action="store_true",
                   help="the cloud's stored copy: do not deliver to the device")
    d.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                   help="how long to wait for the cloud's answer")
    d.set_defaults(func=cmd_datapoint)

    a = sub.add_parser("authorize", parents=[data], help="claim an activated device by its token")
    a.add_argument("token")
    a.set_defaults(func=cmd_authorize)

    simulate.register(sub)
