"""The cloud server: device sockets (TLS and plain TCP) and the HTTPS REST API in one
asyncio loop. `esplink cloud serve` runs it; tests run it with start_in_thread()."""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path

from esplink import CommandError
from esplink.cloud import api, certs, protocol, replies
from esplink.cloud.store import Store

log = logging.getLogger("esplink.cloud")

# A board pings after 50 s without traffic: three silent periods and it is gone
# (a board that lost power leaves a half-open socket nobody else would close).
IDLE_TIMEOUT = 150.0
WRITE_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
BYEBYE = {"message": "byebye, close by other peer login with same master key", "status": 200}
FIELD_LIMIT = 128  # activate's token/bssid/rom_version go back in its reply: keep it small


class Conn:
    """One device socket. Writes are whole frames, one write() each, never interleaved."""

    def __init__(self, writer, kind):
        self.writer, self.kind = writer, kind
        self.peer = writer.get_extra_info("peername")
        self.device_id = None  # set by a login; cleared when another socket takes over
        self.lock = asyncio.Lock()

    async def send(self, frame):
        data = frame if isinstance(frame, (bytes, bytearray)) else protocol.encode(frame)
        async with self.lock:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), WRITE_TIMEOUT)


class Pending:
    def __init__(self, nonce, future, conn):
        self.nonce, self.future, self.conn = nonce, future, conn


class Cloud:
    def __init__(self, data_dir, host="127.0.0.1", tls_port=8443, plain_port=8000,
                 api_port=9443, rpc_timeout=10.0, cert_names=(), idle_timeout=IDLE_TIMEOUT):
        self.data_dir = Path(data_dir)
        self.host = host
        self.tls_port, self.plain_port, self.api_port = tls_port, plain_port, api_port
        self.rpc_timeout, self.idle_timeout = rpc_timeout, idle_timeout
        self.cert_names = list(cert_names)
        if host not in ("", "0.0.0.0", "::"):
            self.cert_names.append(host)
        self.server_json = self.data_dir / "server.json"
        self.channels = {}   # device id -> Conn that delivers to it
        self.pending = {}    # device id -> Pending (one outstanding delivery each)
        self.locks = {}      # device id -> asyncio.Lock serializing deliveries
        self.logins = {}     # device id -> successful activate/identify count
        self._writers, self._tasks = set(), set()  # live sockets, their handlers
        self._servers = []
        self._wrote_json = False
        self.store = None

    # lifecycle

    async def start(self):
        self._refuse_second_server()
        self.paths = certs.ensure(self.data_dir, self.cert_names)
        self.ca_file = self.paths.ca_pem
        self.store = Store(self.data_dir)
        self.store.all_offline()  # nobody is connected to a server that just started
        try:
            for handler, port, tls in ((self._tls, self.tls_port, certs.device_context(self.paths)),
                                       (self._plain, self.plain_port, None),
                                       (self._api, self.api_port, certs.server_context(self.paths))):
                # limit bounds the REST head; device sockets frame by themselves
                self._servers.append(await asyncio.start_server(
                    handler, self.host, port, ssl=tls, limit=api.HEAD_LIMIT,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls else None))
        except BaseException:
            await self.stop()  # release the ports already bound
            raise
        self.tls_port, self.plain_port, self.api_port = (
            s.sockets[0].getsockname()[1] for s in self._servers)
        self._write_server_json()
        log.info("cloud up: device TLS %s, plain %s, REST API %s (data %s)",
                 self.tls_port, self.plain_port, self.api_port, self.data_dir)

    async def stop(self):
        """Drop every socket at once, as a killed process would; state is on disk."""
        for s in self._servers:
            s.close()
        for w in list(self._writers):
            w.transport.abort()
        for p in self.pending.values():
            if not p.future.done():
                p.future.set_exception(protocol.Offline("server stopping"))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        if self.store:
            self.store.all_offline()
            self.store.close()
            self.store = None
        if self._wrote_json:
            self._wrote_json = False
            self.server_json.unlink(missing_ok=True)

    def _refuse_second_server(self):
        try:
            pid = int(json.loads(self.server_json.read_text())["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return
        if pid == os.getpid():
            return  # an earlier in-process server (tests) that was not stopped cleanly
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # a stale file from a killed server
        except PermissionError:
            pass
        raise CommandError(f"a cloud server (pid {pid}) already uses {self.data_dir}"
                           f" (delete {self.server_json} if it is gone)")

    def _write_server_json(self):
        info = {"host": self.host, "tls_port": self.tls_port, "plain_port": self.plain_port,
                "api_port": self.api_port, "pid": os.getpid()}
        tmp = self.server_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, sort_keys=True) + "\n")
        tmp.replace(self.server_json)
        self._wrote_json = True

    def _tls(self, reader, writer):
        return self._tracked(self._device(reader, writer, "tls"), writer)

    def _plain(self, reader, writer):
        return self._tracked(self._device(reader, writer, "plain"), writer)

    def _api(self, reader, writer):
        return self._tracked(api.handle(self, reader, writer), writer)

    async def _tracked(self, coro, writer):
        task = asyncio.current_task()
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await coro
        except Exception:
            log.exception("connection handler failed")
        finally:
            self._tasks.discard(task)
            self._writers.discard(writer)
            writer.transport.abort()

    # device sockets

    async def _device(self, reader, writer, kind):
        conn = Conn(writer, kind)
        framer = protocol.Framer()
        try:
            while True:
                data = await asyncio.wait_for(reader.read(4096), self.idle_timeout)
                if not data:
                    return
                for line, oversize in framer.feed(data):
                    await self._frame(conn, line, oversize)
        except (OSError, asyncio.TimeoutError):
            pass  # reset, TLS error, silent too long: the board reconnects
        finally:
            self._release(conn)

    async def _frame(self, conn, line, oversize):
        if oversize:
            reply = replies.error(400, f"frame longer than {protocol.FRAME_LIMIT} bytes",
                                  protocol.guess_nonce(line))
        elif not line.strip():
            return  # blank line, e.g. a terminal's "\r\n"
        else:
            try:
                msg = protocol.parse(line)
            except ValueError as e:
                reply = replies.error(400, str(e), protocol.guess_nonce(line))
            else:
                try:
                    reply = self._request(conn, msg)
                except Exception:
                    log.exception("device request failed")
                    reply = replies.error(500, "internal error")
                if reply is None:
                    return
                if msg.get("nonce") is not None:
                    reply["nonce"] = msg["nonce"]
        await conn.send(reply)

    def _request(self, conn, msg):
        """The reply to one device frame, or None (a reply to a delivery gets none)."""
        if protocol.is_delivery_reply(msg):
            self._delivery_reply(conn, msg)
            return None
        path = msg.get("path")
        if not isinstance(path, str):
            return replies.error(400, "missing path")
        path, method = protocol.normalize(path), msg.get("method")
        stream = protocol.datastream(path)
        allowed = {protocol.ACTIVATE: ("POST",), protocol.IDENTIFY: ("GET",),
                   protocol.PING: ("POST", "GET")}.get(path, ("POST", "GET") if stream else None)
        if allowed is None:
            return replies.error(404, f"no such path: {path[:80]}")
        if method not in allowed:
            return replies.error(405, f"{path} takes {' or '.join(allowed)}")
        meta = msg.get("meta")
        auth = meta.get("Authorization") if isinstance(meta, dict) else None
        key = protocol.authorization(auth)
        if key is None:
            return replies.error(401, "missing or garbled Authorization (want \"token <device key>\")")
        dev = self.store.by_master_key(key)
        if dev is None:
            return replies.error(403, "invalid device key")
        self.store.seen(dev["id"])
        if path == protocol.ACTIVATE:
            reply = self.activate(dev, msg.get("body"))
            if reply["status"] == 200:
                self._login(conn, dev)
            return reply
        if path == protocol.PING:
            return replies.ping(time.time())
        if not dev["activated"]:
            return replies.error(403, "device not activated")
        if path == protocol.IDENTIFY:
            self._login(conn, dev)
            return {"device": replies.device(self.store.device(dev["id"])), "status": 200}
        if method == "GET":
            return self.latest_datapoint(dev, stream)
        return self.add_datapoint(dev, stream, msg.get("body"))

    def _login(self, conn, dev):
        did = dev["id"]
        if conn.device_id not in (None, did):
            self._release(conn)
        old = self.channels.get(did)
        conn.device_id = did
        self.channels[did] = conn
        self.logins[did] = self.logins.get(did, 0) + 1
        self.store.set_online(did, True)
        if old is conn:
            return
        log.info("device %s (%s) online over %s from %s", did, dev["name"], conn.kind, conn.peer)
        if old is not None:
            old.device_id = None  # its frames no longer speak for the device
            self._fail_pending(old)
            task = asyncio.ensure_future(self._byebye(old))  # never hold up the new login
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _byebye(self, conn):
        try:
            await conn.send(BYEBYE)
        except (OSError, asyncio.TimeoutError):
            pass
        conn.writer.close()

    def _release(self, conn):
        did, conn.device_id = conn.device_id, None
        self._fail_pending(conn)
        if did is not None and self.channels.get(did) is conn:
            del self.channels[did]
            if self.store:
                self.store.set_online(did, False)
            log.info("device %s offline", did)

    def _fail_pending(self, conn):
        for p in self.pending.values():
            if p.conn is conn and not p.future.done():
                p.future.set_exception(protocol.Offline("the device went offline"))

    def _delivery_reply(self, conn, msg):
        p = self.pending.get(conn.device_id)
        nonce = msg.get("nonce")
        if p and p.conn is conn and type(nonce) is int and nonce == p.nonce and not p.future.done():
            p.future.set_result(msg)
        else:
            log.info("device %s: ignored a delivery reply with nonce %r", conn.device_id, nonce)

    # shared by the device socket and the REST API

    def activate(self, dev, body) -> dict:
        if not isinstance(body, dict):
            return replies.error(400, "activate needs a body")
        fields = [body.get("token"), body.get("bssid", ""), body.get("rom_version", "")]
        if not all(isinstance(f, str) and len(f) <= FIELD_LIMIT for f in fields):
            return replies.error(400, "token, bssid and rom_version must be short strings")
        dev = self.store.activate(dev["id"], *fields)
        log.info("device %s (%s) activated", dev["id"], dev["name"])
        return replies.activated(dev)

    def add_datapoint(self, dev, stream, body) -> dict:
        point = body.get("datapoint") if isinstance(body, dict) else None
        if not isinstance(point, dict):
            return replies.error(400, "body must be {\"datapoint\": {...}}")
        self.store.add_datapoint(dev["id"], stream, point)
        return {"datapoint": point, "status": 200}

    def latest_datapoint(self, dev, stream) -> dict:
        point = self.store.latest_datapoint(dev["id"], stream)
        if point is None:
            return replies.error(404, f"no datapoint in {stream}")
        return {"datapoint": point, "status": 200}

    async def deliver(self, device_id, caller_key, method, path, get, body=None, timeout=None):
        """Push a request down the device's socket; its reply. Raises Offline, or
        asyncio.TimeoutError after `timeout` (queueing behind another delivery included)."""
        lock = self.locks.setdefault(device_id, asyncio.Lock())

        async def one():
            async with lock:
                conn = self.channels.get(device_id)
                if conn is None:
                    raise protocol.Offline("the device is offline")
                nonce = secrets.randbelow(2 ** 31)
                msg = protocol.delivery(nonce, method, path, get, caller_key, body)
                pending = self.pending[device_id] = Pending(
                    nonce, asyncio.get_running_loop().create_future(), conn)
                try:
                    try:
                        await conn.send(msg)
                    except OSError:
                        raise protocol.Offline("the device went offline") from None
                    return await pending.future
                finally:
                    if self.pending.get(device_id) is pending:
                        del self.pending[device_id]

        return await asyncio.wait_for(one(), self.rpc_timeout if timeout is None else timeout)

    async def send_raw(self, device_id, data: bytes):
        conn = self.channels.get(device_id)
        if conn is None:
            raise protocol.Offline(f"device {device_id} is offline")
        await conn.send(bytes(data))


class Running:
    """A Cloud on its own thread and loop (start_in_thread)."""

    def __init__(self, cloud, loop, thread):
        self.cloud, self.loop, self.thread = cloud, loop, thread
        self.host, self.data_dir, self.ca_file = cloud.host, cloud.data_dir, cloud.ca_file
        self.tls_port, self.plain_port, self.api_port = cloud.tls_port, cloud.plain_port, cloud.api_port
        self.stopped = False

    def call(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def send_raw(self, device_id, data: bytes):
        self.call(self.cloud.send_raw(device_id, data))

    def online(self, device_id) -> bool:
        return self.call(_value(lambda: device_id in self.cloud.channels))

    def logins(self, device_id) -> int:
        return self.call(_value(lambda: self.cloud.logins.get(device_id, 0)))

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self.call(self.cloud.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


async def _value(fn):
    return fn()


def start_in_thread(data_dir, host="127.0.0.1", **options) -> Running:
    """Start a Cloud on a background thread; ports default to 0 (any free one)."""
    for port in ("tls_port", "plain_port", "api_port"):
        options.setdefault(port, 0)
    loop = asyncio.new_event_loop()
    started = concurrent.futures.Future()
    cloud = Cloud(data_dir, host, **options)

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(cloud.start())
        except BaseException as e:
            started.set_exception(e)
        else:
            started.set_result(None)
            loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for t in tasks:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name="esplink-cloud", daemon=True)
    thread.start()
    started.result()
    return Running(cloud, loop, thread)
