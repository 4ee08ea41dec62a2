"""The cloud's HTTPS side on aiohttp: the REST API (the seed's paths, with its JSON
shapes: accounts and keys, devices, RPCs, datastreams) and the web console, in the
same asyncio loop as the device sockets. Every path is described in openapi.py, served
at /v1/openapi.json. Errors are {"status": N, "message": "..."} with HTTP status N.
Nothing secret is logged: no access log (queries can carry tokens), our own lines
name paths and ids only."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict, deque
from pathlib import Path

from aiohttp import web

from esplink.cloud import openapi, protocol, replies

log = logging.getLogger("esplink.cloud")

BODY_LIMIT = 64 * 1024
CONSOLE = Path(__file__).parent / "console"
LOGIN_WINDOW_S = 600.0
LOGIN_FAILURES = 10  # per email and per client address within the window, then 429


class _NoEcho(logging.Filter):
    """aiohttp logs a request it cannot parse with the offending bytes, and a header
    line can hold a key (`Authorization: token ...`): keep only that one was refused."""

    def filter(self, record):
        exc = record.exc_info[1] if record.exc_info else None
        record.msg, record.args = "HTTP request refused by the parser: %s", (getattr(exc, "code", None)
                                                                             or type(exc).__name__,)
        record.exc_info = record.exc_text = None
        return True


_PROTOCOL_LOG = logging.getLogger("esplink.cloud.http")
_PROTOCOL_LOG.addFilter(_NoEcho())

CLOUD = web.AppKey("cloud", object)
FAILURES = web.AppKey("failures", defaultdict)


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status, self.message = status, message


class Site:
    def __init__(self, runner, port):
        self.runner, self.port = runner, port

    async def stop(self):
        await self.runner.cleanup()


async def start(cloud, host, port, ssl_context) -> Site:
    app = web.Application(middlewares=[_headers, _errors], client_max_size=BODY_LIMIT)
    app[CLOUD] = cloud
    app[FAILURES] = defaultdict(deque)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
        if path.endswith("/"):  # both spellings are in use (the C demo left the slash off)
            app.router.add_route(method, path[:-1], handler)
    app.router.add_get("/", console_page)
    app.router.add_static("/console/", CONSOLE, show_index=False)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0, logger=_PROTOCOL_LOG)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    await site.start()
    return Site(runner, runner.addresses[0][1])


# The console loads only its own files; the QR code arrives as a blob: URL.
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none';"
                               " base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@web.middleware
async def _headers(request, handler):
    response = await handler(request)
    response.headers.update(_SECURITY_HEADERS)
    return response


@web.middleware
async def _errors(request, handler):
    try:
        if (request.content_length or 0) > BODY_LIMIT:  # before a byte of it is read
            raise ApiError(413, f"body over {BODY_LIMIT} bytes")
        return await handler(request)
    except ApiError as e:
        return _json(replies.error(e.status, e.message), e.status)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        message = {404: f"no such path: {request.path[:80]}", 405: f"{request.path} does not take {request.method}",
                   413: f"body over {BODY_LIMIT} bytes"}.get(e.status, e.reason)
        return _json(replies.error(e.status, message), e.status)
    except Exception:
        log.exception("REST request %s %s failed", request.method, request.path)
        return _json(replies.error(500, "internal error"), 500)


def _json(reply, status=None):
    return web.Response(body=json.dumps(reply, sort_keys=True).encode(), status=status or reply.get("status", 200),
                        content_type="application/json")


async def _body(request):
    """The JSON body whatever the Content-Type says: curl -d sends JSON as a form."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise ApiError(400, "body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "body must be a JSON object")
    return body


def _key(request, required=True):
    key = protocol.authorization(request.headers.get("Authorization"))
    if key is None and required:
        raise ApiError(401, "missing or garbled Authorization (want \"token <key>\")")
    return key


def _user(request):
    """The account whose user key the request carries."""
    user = request.app[CLOUD].store.by_user_key(_key(request))
    if user is None:
        raise ApiError(403, "this path takes a user key (POST /v1/keys/)")
    return user


def _device(request, owner_only=False):
    """(key, device) for a device-level path: a master or owner key, or a user key with
    ?device_id= for a device the account owns (or was given, unless owner_only)."""
    store = request.app[CLOUD].store
    key = _key(request)
    dev = store.resolve_key(key)
    if dev is not None:
        return key, dev
    user = store.by_user_key(key)
    if user is None:
        raise ApiError(403, "invalid key")
    ref = request.query.get("device_id", "")
    dev = store.device(int(ref)) if ref.isdigit() and ref.isascii() else None
    if dev is None:
        raise ApiError(404, "no such device (a user key needs ?device_id=)")
    if not (dev["user_id"] == user["id"] or (not owner_only and store.may_use(user["id"], dev["id"]))):
        raise ApiError(404, "no such device")  # not 403: another account's devices are not there
    return key, dev


def _limit_logins(request, email):
    failures = request.app[FAILURES]
    now = time.monotonic()
    for who in (f"email:{str(email).lower()}", f"addr:{request.remote}"):
        q = failures[who]
        while q and now - q[0] > LOGIN_WINDOW_S:
            q.popleft()
        if len(q) >= LOGIN_FAILURES:
            raise ApiError(429, "too many failed logins: wait a few minutes")


def _login_failed(request, email):
    now = time.monotonic()
    for who in (f"email:{str(email).lower()}", f"addr:{request.remote}"):
        request.app[FAILURES][who].append(now)


async def _login(request):
    body = await _body(request)
    email, password = body.get("email"), body.get("password")
    _limit_logins(request, email)
    store = request.app[CLOUD].store
    user = store.check_login(email, password)
    if user is None:
        _login_failed(request, email)
        log.info("login refused")  # never the email or the password
        raise ApiError(403, "wrong email or password")
    return user, body


# ---- public paths


async def ping(request):
    return _json({"epoch": int(time.time()), "status": 200})


async def user_join(request):
    body = await _body(request)
    store = request.app[CLOUD].store
    try:
        user = store.create_user(body.get("email"), body.get("password"))
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    log.info("account %s created", user["id"])
    return _json({"user": replies.user(user), "key": replies.user_key(store.user_key(user["id"])), "status": 200})


async def user_login(request):
    user, _ = await _login(request)
    store = request.app[CLOUD].store
    return _json({"user": replies.user(user), "key": replies.user_key(store.user_key(user["id"])), "status": 200})


async def keys(request):
    user, body = await _login(request)
    if body.get("scope", "user") != "user":
        raise ApiError(400, "scope must be \"user\"")
    return _json({"keys": [replies.user_key(request.app[CLOUD].store.user_key(user["id"]))], "status": 200})


async def authorize(request):
    """Claim the device activated with a token: into the caller's account with a user
    key; without one, only its owner key."""
    body = await _body(request)
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise ApiError(400, "body must be {\"token\": \"<activation token>\"}")
    cloud = request.app[CLOUD]
    user = None
    if _key(request, required=False) is not None:
        user = _user(request)
    claimed = cloud.store.claim(token, user["id"] if user else None)
    if claimed is None:
        raise ApiError(404, "no activated device with that token, or it was claimed already")
    key, dev = claimed
    log.info("device %s (%s) claimed%s: new owner key", dev["id"], dev["name"],
             f" into account {user['id']}" if user else "")
    return _json({"key": replies.owner_key(key, dev), "device": replies.device(dev), "status": 200})


async def cloud_info(request):
    """Where devices connect and the CA they verify the cloud with: the console's pairing
    link and flash command line take them from here."""
    cloud = request.app[CLOUD]
    return _json({"cloud": {"tls_port": cloud.tls_port, "plain_port": cloud.plain_port, "ca_der": "/ca.der",
                            "ca_pem": "/ca.pem"}, "status": 200})


async def ca_file(request):
    """The cloud's CA certificate, public: boards (flash.sh --ca) and browsers take it."""
    paths = request.app[CLOUD].paths
    if request.path.endswith(".der"):
        return web.FileResponse(paths.ca_der, headers={"Content-Type": "application/x-x509-ca-cert"})
    return web.FileResponse(paths.ca_pem, headers={"Content-Type": "application/x-pem-file"})


async def openapi_json(request):
    return web.json_response(openapi.spec(ROUTES))


async def console_page(request):
    return web.FileResponse(CONSOLE / "index.html")


# ---- an account's paths (user key)


async def user_devices(request):
    user = _user(request)
    store = request.app[CLOUD].store
    if request.method == "GET":
        return _json({"devices": [replies.listed(d) for d in store.devices(user["id"])], "status": 200})
    body = await _body(request)
    try:
        dev = store.create_device(body.get("name"), user["id"])
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    prod = store.product(dev["product_id"])
    log.info("account %s created device %s (%s)", user["id"], dev["id"], dev["name"])
    return _json({"device": dict(replies.device(dev), secret=dev["secret"]), "key": replies.master_key(dev),
                  "product": dict(replies.product(prod), secret=prod["secret"]), "status": 200})


async def share(request):
    user = _user(request)
    body = await _body(request)
    store = request.app[CLOUD].store
    ref, email = body.get("device_id"), body.get("email")
    dev = store.device(ref) if type(ref) is int else None
    if dev is None or dev["user_id"] != user["id"]:
        raise ApiError(404, "no such device of yours")
    other = store.user_by_email(email)
    if other is None:
        raise ApiError(404, "no account with that email")
    store.share(dev["id"], other["id"])
    log.info("account %s shared device %s with account %s", user["id"], dev["id"], other["id"])
    return _json({"status": 200})


async def qr(request):
    """The console's pairing link as a QR code (SVG), drawn here: no CDN."""
    import io

    import segno

    _user(request)
    text = request.query.get("text", "")
    if not 1 <= len(text) <= 512:
        raise ApiError(400, "text must be 1 to 512 characters")
    out = io.BytesIO()
    segno.make(text, error="m").save(out, kind="svg", scale=4, border=2)
    return web.Response(body=out.getvalue(), content_type="image/svg+xml")


# ---- a device's paths (master or owner key, or a user key with ?device_id=)


async def device_info(request):
    if request.method == "POST":  # the app's spelling of PUT and DELETE
        request_method = request.query.get("method", "").upper()
        if request_method == "PUT":
            return await _rename(request)
        if request_method == "DELETE":
            return await _delete(request)
        raise ApiError(405, "/v1/device/ takes GET, PUT, DELETE (or POST with ?method=PUT|DELETE)")
    if request.method == "PUT":
        return await _rename(request)
    if request.method == "DELETE":
        return await _delete(request)
    _, dev = _device(request)
    return _json({"device": replies.device(dev), "status": 200})


async def _rename(request):
    _, dev = _device(request)
    body = await _body(request)
    try:
        dev = request.app[CLOUD].store.rename(dev["id"], body.get("name"))
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    return _json({"device": replies.device(dev), "status": 200})


async def _delete(request):
    key, dev = _device(request, owner_only=True)
    cloud = request.app[CLOUD]
    if dev["master_key"] == key:
        raise ApiError(403, "a device cannot delete itself")
    link = cloud.links.pop(dev["id"], None)
    if link is not None and link.conn is not None:
        link.conn.writer.close()
    cloud.store.delete_device(dev["id"])
    log.info("device %s deleted", dev["id"])
    return _json({"status": 200})


async def activate(request):
    key, dev = _device(request)
    if dev["master_key"] != key:
        raise ApiError(403, "activation takes the master device key")
    reply = request.app[CLOUD].activate(dev, await _body(request))
    return _json(reply)


async def rpc(request):
    key, dev = _device(request)
    get = _get(request)
    if not get.get("action"):
        raise ApiError(400, "missing action")
    body = await _body(request) if request.method == "POST" else None
    return await _deliver(request, dev, key, protocol.RPC, get, body or None)


async def datapoint(request):
    key, dev = _device(request)
    stream = request.match_info["stream"]
    path = protocol.datastream_path(stream)
    get = _get(request)
    deliver = request.query.get("deliver_to_device", "").lower() in ("true", "1")
    payload = None
    if request.method == "POST":
        payload = await _body(request)
        if not isinstance(payload.get("datapoint"), dict):
            raise ApiError(400, "body must be {\"datapoint\": {...}}")
    if deliver:
        return await _deliver(request, dev, key, path, get, payload)
    cloud = request.app[CLOUD]
    if request.method == "POST":
        return _json(cloud.add_datapoint(dev, stream, payload))
    return _json(cloud.latest_datapoint(dev, stream))


async def streams(request):
    _, dev = _device(request)
    return _json({"datastreams": request.app[CLOUD].store.streams(dev["id"]), "status": 200})


async def datapoints(request):
    _, dev = _device(request)
    stream = request.match_info["stream"]
    limit = request.query.get("limit", "200")
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= 1000):
        raise ApiError(400, "limit must be 1 to 1000")
    points = request.app[CLOUD].store.datapoints(dev["id"], stream, int(limit))
    return _json({"datapoints": points, "status": 200})


def _get(request):
    """The query, as a delivery's `get` (device_id, method and deliver_to_device are ours)."""
    return {k: v for k, v in request.query.items() if k not in ("device_id", "method", "deliver_to_device")}


async def _deliver(request, dev, key, path, get, body):
    cloud = request.app[CLOUD]
    method = request.method
    try:
        reply = await cloud.deliver(dev["id"], key, method, path, get, body)
    except protocol.Offline as e:
        raise ApiError(503, f"device {dev['id']}: {e}") from None
    except protocol.TooLarge as e:
        raise ApiError(413, f"too large for the device: {e}") from None
    except asyncio.TimeoutError:
        raise ApiError(504, f"device {dev['id']} did not answer within {cloud.rpc_timeout:g} s") from None
    status = reply.get("status", 200)
    if type(status) is not int or not 200 <= status <= 599:
        raise ApiError(502, f"device {dev['id']} replied with a bad status")
    log.info("device %s: %s %s %s -> %s", dev["id"], method, path, get.get("action", ""), status)
    return _json(reply, status)


# (method, path, handler); openapi.py describes each one
ROUTES = [
    ("GET", "/v1/ping/", ping),
    ("POST", "/v1/user/join/", user_join),
    ("POST", "/v1/user/login/", user_login),
    ("POST", "/v1/keys/", keys),
    ("POST", "/v1/key/authorize/", authorize),
    ("GET", "/v1/openapi.json", openapi_json),
    ("GET", "/v1/cloud/", cloud_info),
    ("GET", "/ca.der", ca_file),
    ("GET", "/ca.pem", ca_file),
    ("GET", "/v1/user/devices/", user_devices),
    ("POST", "/v1/user/devices/", user_devices),
    ("POST", "/v1/key/share/", share),
    ("GET", "/v1/qr/", qr),
    ("GET", "/v1/device/", device_info),
    ("PUT", "/v1/device/", device_info),
    ("DELETE", "/v1/device/", device_info),
    ("POST", "/v1/device/", device_info),
    ("POST", "/v1/device/activate/", activate),
    ("GET", "/v1/device/rpc/", rpc),
    ("POST", "/v1/device/rpc/", rpc),
    ("GET", "/v1/datastreams/", streams),
    ("GET", "/v1/datastreams/{stream:[A-Za-z0-9_.-]{1,64}}/datapoint/", datapoint),
    ("POST", "/v1/datastreams/{stream:[A-Za-z0-9_.-]{1,64}}/datapoint/", datapoint),
    ("GET", "/v1/datastreams/{stream:[A-Za-z0-9_.-]{1,64}}/datapoints/", datapoints),
]
