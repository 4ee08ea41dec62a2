"""The REST API phones and scripts call: minimal HTTP/1.1 over the asyncio stream,
one request per connection, JSON both ways."""
from __future__ import annotations

import asyncio
import http
import json
import logging
import time
from urllib.parse import parse_qsl, urlsplit

from esplink.cloud import protocol, replies

log = logging.getLogger("esplink.cloud")

HEAD_LIMIT = 8192
BODY_LIMIT = 64 * 1024
READ_TIMEOUT = 10.0


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


async def handle(cloud, reader, writer):
    try:
        try:
            method, target, headers, body = await asyncio.wait_for(
                _read_request(reader, writer), READ_TIMEOUT)
            status, reply = await route(cloud, method, target, headers, body)
        except HttpError as e:
            status, reply = e.status, replies.error(e.status, e.message)
        except (OSError, EOFError, asyncio.TimeoutError):
            raise
        except Exception:
            log.exception("REST request failed")
            status, reply = 500, replies.error(500, "internal error")
        data = json.dumps(reply, sort_keys=True).encode()
        writer.write(f"HTTP/1.1 {status} {_reason(status)}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
        await asyncio.wait_for(writer.drain(), READ_TIMEOUT)
        writer.close()  # flushes, then TLS close_notify
        await asyncio.wait_for(writer.wait_closed(), READ_TIMEOUT)
    except (OSError, EOFError, asyncio.TimeoutError, asyncio.IncompleteReadError):
        pass  # the client went away or stalled


def _reason(status):
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


async def _read_request(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "bad request line")
    headers = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise HttpError(400, "bad header line")
            headers[name.strip().lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise HttpError(411, "send the body with Content-Length")
    length = headers.get("content-length", "0")
    if not length.isdigit():
        raise HttpError(400, "bad Content-Length")
    if int(length) > BODY_LIMIT:
        raise HttpError(413, f"body over {BODY_LIMIT} bytes")
    if int(length) and headers.get("expect", "").lower() == "100-continue":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # curl asks before a large -d
    body = await reader.readexactly(int(length))
    return parts[0], parts[1], headers, body


def _json_body(body):
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except ValueError:
        raise HttpError(400, "body is not JSON") from None


def _caller(cloud, headers):
    """(key, device) from `Authorization: token <key>`, a master or owner key."""
    key = protocol.authorization(headers.get("authorization"))
    if key is None:
        raise HttpError(401, "missing or garbled Authorization (want \"token <key>\")")
    dev = cloud.store.resolve_key(key)
    if dev is None:
        raise HttpError(403, "invalid key")
    return key, dev


async def route(cloud, method, target, headers, body) -> tuple[int, dict]:
    url = urlsplit(target)
    path = protocol.normalize(url.path)
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    stream = protocol.datastream(path)
    allowed = {protocol.PING: ("GET",), protocol.AUTHORIZE: ("POST",),
               protocol.ACTIVATE: ("POST",), protocol.RPC: ("GET", "POST")
               }.get(path, ("GET", "POST") if stream else None)
    if allowed is None:
        raise HttpError(404, f"no such path: {path[:80]}")
    if method not in allowed:
        raise HttpError(405, f"{path} takes {' or '.join(allowed)}")
    if path == protocol.PING:
        return 200, {"epoch": int(time.time()), "status": 200}
    if path == protocol.AUTHORIZE:
        return _status(_authorize(cloud, _json_body(body)))
    key, dev = _caller(cloud, headers)
    if path == protocol.ACTIVATE:
        if dev["master_key"] != key:
            raise HttpError(403, "activation takes the master device key")
        return _status(cloud.activate(dev, _json_body(body)))
    deliver = query.pop("deliver_to_device", "").lower() in ("true", "1")
    if path == protocol.RPC:
        if not query.get("action"):
            raise HttpError(400, "missing action")
        return await _deliver(cloud, dev, key, method, path, query, _json_body(body))
    payload = _json_body(body) if method == "POST" else None
    if method == "POST" and not (isinstance(payload, dict) and isinstance(payload.get("datapoint"), dict)):
        raise HttpError(400, "body must be {\"datapoint\": {...}}")
    if deliver:
        return await _deliver(cloud, dev, key, method, path, query, payload)
    if method == "POST":
        return _status(cloud.add_datapoint(dev, stream, payload))
    return _status(cloud.latest_datapoint(dev, stream))


def _status(reply):
    return reply.get("status", 200), reply


def _authorize(cloud, body):
    token = body.get("token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise HttpError(400, "body must be {\"token\": \"<activation token>\"}")
    claimed = cloud.store.claim(token)
    if claimed is None:
        raise HttpError(404, "no activated device with that token, or it was claimed already")
    key, dev = claimed
    log.info("device %s (%s) claimed: new owner key", dev["id"], dev["name"])
    return {"key": replies.owner_key(key, dev), "status": 200}


async def _deliver(cloud, dev, key, method, path, get, body):
    try:
        reply = await cloud.deliver(dev["id"], key, method, path, get, body)
    except protocol.Offline as e:
        raise HttpError(503, f"device {dev['id']}: {e}") from None
    except asyncio.TimeoutError:
        raise HttpError(504, f"device {dev['id']} did not answer within {cloud.rpc_timeout:g} s") from None
    status = reply.get("status", 200)
    if type(status) is not int or not 200 <= status <= 599:
        raise HttpError(502, f"device {dev['id']} replied with a bad status")
    log.info("device %s: %s %s %s -> %s", dev["id"], method, path, get.get("action", ""), status)
    return status, reply
