"""The phone's side of pairing: `esplink pair ap` asks the device who it is
(GET /device), then hands it the Wi-Fi and cloud endpoint (POST /ap), on one
keep-alive connection as phone apps do. `esplink pair touch` (touch.py) first
broadcasts the Wi-Fi as ESP-Touch, then does the same exchange."""
import argparse
import http.client
import json
import socket

from esplink import CommandError

DEFAULT_DEVICE = "10.10.7.1:80"


def split_hostport(text, default_port):
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise CommandError(f"bad port in {text!r}")
    return host, int(port)


def port_number(text):
    """argparse type for a TCP/UDP port."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def pair_ap(device, ssid, password, server=None, token=None, timeout=10.0):
    """Returns (identity dict, reply dict). Raises CommandError on any failure."""
    host, port = split_hostport(device, 80)
    body = {"ssid": ssid, "password": password}
    if server:
        body["serverName"], body["port"] = split_hostport(server, 8443)
    if token:
        body["token"] = token
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        identity = _exchange(conn, "GET", "/device", None)
        for key in ("deviceid", "apikey", "chipid"):
            if not isinstance(identity.get(key), str):
                raise CommandError(f"GET /device: reply has no {key}")
        reply = _exchange(conn, "POST", "/ap", json.dumps(body).encode())
    except (socket.timeout, TimeoutError):
        raise CommandError(f"device {host}:{port} did not answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as e:
        raise CommandError(f"cannot talk to device {host}:{port}: {e.__class__.__name__}: {e}")
    finally:
        conn.close()
    if reply.get("error") != 0:
        raise CommandError(f"POST /ap refused: {reply.get('reason', reply)}")
    return identity, reply


def _exchange(conn, method, path, body):
    headers = {"Connection": "Keep-Alive"}
    if body is not None:
        headers["Content-Type"] = "application/json;charset=UTF-8"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        reply = json.loads(raw)
    except ValueError:
        raise CommandError(f"{method} {path}: HTTP {resp.status}, not JSON")
    if not isinstance(reply, dict):
        raise CommandError(f"{method} {path}: HTTP {resp.status}, not a JSON object")
    if resp.status != 200:
        raise CommandError(f"{method} {path} refused: HTTP {resp.status} {reply.get('reason', '')}".rstrip())
    return reply


def cmd_ap(args):
    identity, _ = pair_ap(args.device, args.ssid, args.password, args.server, args.token, args.timeout)
    # the apikey is the device's credential toward the phone's account: show it, as the app would store it
    print(f"device: deviceid={identity['deviceid']} chipid={identity['chipid']} apikey={identity['apikey']}")
    print(f"paired: the device is joining {args.ssid!r}")
    return 0


def register(subparsers):
    pair = subparsers.add_parser("pair", help="pair a device, as the phone app does").add_subparsers(
        dest="pair_command", required=True)
    p = pair.add_parser("ap", help="AP mode: GET /device, then POST /ap")
    p.add_argument("--device", default=DEFAULT_DEVICE, metavar="HOST:PORT")
    p.add_argument("--ssid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--server", metavar="HOST:PORT", help="cloud endpoint the device should use")
    p.add_argument("--token", help="activation token (40 chars [0-9a-z])")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS")
    p.set_defaults(func=cmd_ap)

    from esplink.touch import cmd_touch  # here, not at the top: touch imports this module
    p = pair.add_parser("touch", help="touch mode: broadcast the Wi-Fi as ESP-Touch v1, wait for the "
                        "device's ack, then GET /device and POST /ap")
    p.add_argument("--ssid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--bssid", metavar="MAC", help="the AP's BSSID, aa:bb:cc:dd:ee:ff "
                   "(default 00:00:00:00:00:00: unknown)")
    p.add_argument("--target", default="255.255.255.255:7001", metavar="HOST:PORT",
                   help="where the datagrams go (default 255.255.255.255:7001)")
    p.add_argument("--phone-ip", metavar="IP", help="the address the device acks to "
                   "(default this host's address on the route to the target)")
    p.add_argument("--ack-port", type=port_number, default=18266, metavar="N",
                   help="the UDP port the ack comes to (default 18266)")
    p.add_argument("--device-port", type=port_number, default=80, metavar="N",
                   help="the device's HTTP port (default 80)")
    p.add_argument("--server", metavar="HOST:PORT", help="cloud endpoint the device should use")
    p.add_argument("--token", help="activation token (40 chars [0-9a-z])")
    p.add_argument("--timeout", type=float, default=45.0, metavar="SECONDS",
                   help="how long to send (default 45)")
    p.add_argument("--listen", type=float, default=15.0, metavar="SECONDS",
                   help="how long to wait for the ack after sending (default 15)")
    p.set_defaults(func=cmd_touch)
