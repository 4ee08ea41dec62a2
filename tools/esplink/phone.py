"""The phone's HTTP exchange with a device in pairing: GET /device (who are you), then
POST /ap (the Wi-Fi and the cloud endpoint), on one keep-alive connection as phone apps
do. Used by `esplink pair ap` and, after the ESP-Touch ack, by `esplink pair touch`."""
import argparse
import http.client
import json
import secrets
import socket
import string

from esplink import CommandError

DEFAULT_DEVICE = "10.10.7.1:80"
_TOKEN_CHARS = string.digits + string.ascii_lowercase


def new_token() -> str:
    """An activation token as Espressif's phone app makes it: 40 random [0-9a-z]. The cloud
    takes each once; the phone then claims the device with it (POST /v1/key/authorize/)."""
    return "".join(secrets.choice(_TOKEN_CHARS) for _ in range(40))


def split_hostport(text, default_port):
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, default_port
    if not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
        raise CommandError(f"bad port in {text!r}")
    return host, int(port)


def port_number(text):
    """argparse type for a TCP/UDP port."""
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
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
        # raw UTF-8, as a router spells the name: an escape outside the BMP is a surrogate pair
        reply = _exchange(conn, "POST", "/ap", json.dumps(body, ensure_ascii=False).encode())
    except (socket.timeout, TimeoutError):
        raise CommandError(f"device {host}:{port} did not answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as e:
        raise CommandError(f"cannot talk to device {host}:{port}: {e.__class__.__name__}: {e}")
    finally:
        conn.close()
    if reply.get("error") != 0:
        raise CommandError(f"POST /ap refused: {reply.get('reason', reply)}")
    return identity, reply


def report(identity, ssid, made_token=None):
    """What `esplink pair ap | touch` print once the device took the Wi-Fi."""
    # the apikey is the device's credential toward the phone's account: shown, as the app stores it
    print(f"device: deviceid={identity['deviceid']} chipid={identity['chipid']} apikey={identity['apikey']}")
    print(f"paired: the device is joining {ssid!r}")
    if made_token:
        # the phone's own token: the one way to claim the device once it has activated
        print(f"token: {made_token} (claim the device with: esplink cloud authorize {made_token})")


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
