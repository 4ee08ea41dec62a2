"""The cloud server: device sockets (TLS and plain TCP, our own protocol code: it is the
product) and the HTTPS REST API and console (web.py, aiohttp) in one asyncio loop.
`esplink cloud serve` runs it; tests and benches run it on a thread (harness.py)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import time
from pathlib import Path

from esplink import CommandError
from esplink.cloud import certs, protocol, replies
from esplink.cloud.store import Store

log = logging.getLogger("esplink.cloud")

# A board pings after 50 s without traffic: three silent periods and it is gone
# (a board that lost power leaves a half-open socket nobody else would close).
IDLE_TIMEOUT = 150.0
WRITE_TIMEOUT = 10.0
HANDSHAKE_TIMEOUT = 10.0
BYEBYE = {"message": "byebye, close by other peer login with same master key", "status": 200}
FIELD_LIMIT = 128  # activate's token/bssid/rom_version go back in its reply: keep it small
# After a restart the whole fleet reconnects within a second or two: asyncio's default
# backlog of 100 had the kernel drop SYNs (153 of 1000 in bench/fleet.py), each a 1 s retry.
BACKLOG = 1024


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


class Link:
    """A device as the cloud sees it between its logins: the socket that delivers to it
    (None while offline), one delivery at a time, the one awaiting its reply."""

    def __init__(self):
        self.conn = None
        self.lock = asyncio.Lock()  # serializes deliveries
        self.nonce = None  # of the delivery awaiting its reply
        self.reply = None  # its future
        self.logins = 0  # successful activates and identifies

    def fail(self, conn=None, why="the device went offline"):
        """The awaited reply will not come (from `conn`, or at all)."""
        if self.reply is not None and not self.reply.done() and conn in (None, self.conn):
            self.reply.set_exception(protocol.Offline(why))


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
        self.links = {}  # device id -> Link
        self._writers, self._tasks = set(), set()  # live device sockets, their handlers
        self._servers = []
        self._web = None
        self._wrote_json = False
        self.store = None

    def link(self, device_id) -> Link:
        link = self.links.get(device_id)
        if link is None:
            link = self.links[device_id] = Link()
        return link

    def online(self, device_id) -> bool:
        link = self.links.get(device_id)
        return link is not None and link.conn is not None

    # lifecycle

    async def start(self):
        from esplink.cloud import web  # aiohttp: loaded by the server only

        self._refuse_second_server()
        open_files = protocol.fit_for_a_fleet()
        self.paths = certs.ensure(self.data_dir, self.cert_names)
        self.ca_file = self.paths.ca_pem
        self.store = Store(self.data_dir)
        self.store.all_offline()  # nobody is connected to a server that just started
        try:
            for handler, port, tls in ((self._tls, self.tls_port, certs.device_context(self.paths)),
                                       (self._plain, self.plain_port, None)):
                self._servers.append(await asyncio.start_server(
                    handler, self.host, port, ssl=tls, backlog=BACKLOG,
                    ssl_handshake_timeout=HANDSHAKE_TIMEOUT if tls else None))
            self._web = await web.start(self, self.host, self.api_port, certs.server_context(self.paths))
        except BaseException:
            await self.stop()  # release the ports already bound
            raise
        self.tls_port, self.plain_port = (s.sockets[0].getsockname()[1] for s in self._servers)
        self.api_port = self._web.port
        self._write_server_json()
        log.info("cloud up: device TLS %s, plain %s, REST API and console %s (data %s); room for about %d"
                 " devices (open files limit %d)", self.tls_port, self.plain_port, self.api_port, self.data_dir,
                 max(open_files - 64, 0), open_files)

    async def stop(self):
        """Drop every socket at once, as a killed process would; state is on disk."""
        for s in self._servers:
            s.close()
        for w in list(self._writers):
            w.transport.abort()
        for link in self.links.values():
            link.fail(why="server stopping")
        if self._web:
            await self._web.stop()
            self._web = None
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
            log.info("device socket from %s: refused an unknown device key", conn.peer[0] if conn.peer else "?")
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
        link = self.link(did)
        old = link.conn
        conn.device_id = did
        link.conn = conn
        link.logins += 1
        self.store.set_online(did, True)
        if old is conn:
            return
        log.info("device %s (%s) online over %s from %s", did, dev["name"], conn.kind, conn.peer)
        if old is not None:
            old.device_id = None  # its frames no longer speak for the device
            link.fail(old)
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
        link = self.links.get(did)
        if link is not None and link.conn is conn:
            link.fail(conn)
            link.conn = None
            if self.store:
                self.store.set_online(did, False)
            log.info("device %s offline", did)

    def _delivery_reply(self, conn, msg):
        link = self.links.get(conn.device_id)
        nonce = msg.get("nonce")
        if (link and link.conn is conn and type(nonce) is int and nonce == link.nonce
                and link.reply is not None and not link.reply.done()):
            link.reply.set_result(msg)
        else:
            log.info("device %s: ignored a delivery reply with nonce %r", conn.device_id, nonce)

    # shared by the device socket and the REST API

    def activate(self, dev, body) -> dict:
        if not isinstance(body, dict):
            return replies.error(400, "activate needs a body")
        fields = [body.get("token"), body.get("bssid", ""), body.get("rom_version", "")]
        if not all(isinstance(f, str) and len(f) <= FIELD_LIMIT for f in fields):
            return replies.error(400, "token, bssid and rom_version must be short strings")
        try:
            dev = self.store.activate(dev["id"], *fields)
        except ValueError as e:
            log.info("device %s (%s): activation refused: %s", dev["id"], dev["name"], e)
            return replies.error(400, str(e))
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
        """Push a request down the device's socket; its reply. Raises Offline,
        protocol.TooLarge, or asyncio.TimeoutError after `timeout` (queueing behind
        another delivery included)."""
        link = self.link(device_id)
        # measured with the widest nonce, before queueing: too large is said at once, not
        # after waiting behind another delivery
        widest = len(protocol.encode(protocol.delivery(2 ** 31 - 1, method, path, get, caller_key, body)))
        if widest > protocol.DEVICE_FRAME_LIMIT:
            raise protocol.TooLarge(f"{widest} bytes; a device takes {protocol.DEVICE_FRAME_LIMIT}")

        async def one():
            async with link.lock:
                conn = link.conn
                if conn is None:
                    raise protocol.Offline("the device is offline")
                nonce = secrets.randbelow(2 ** 31)
                frame = protocol.encode(protocol.delivery(nonce, method, path, get, caller_key, body))
                link.nonce, link.reply = nonce, asyncio.get_running_loop().create_future()
                try:
                    try:
                        await conn.send(frame)
                    except OSError:
                        raise protocol.Offline("the device went offline") from None
                    return await link.reply
                finally:
                    link.nonce = link.reply = None

        reply = await asyncio.wait_for(one(), self.rpc_timeout if timeout is None else timeout)
        stream = protocol.datastream(path)
        if stream and method == "POST" and reply.get("status") == 200 and isinstance(reply.get("datapoint"), dict):
            self.store.add_datapoint(device_id, stream, reply["datapoint"])  # what the device now holds
        return reply

    async def send_raw(self, device_id, data: bytes):
        link = self.links.get(device_id)
        if link is None or link.conn is None:
            raise protocol.Offline(f"device {device_id} is offline")
        await link.conn.send(bytes(data))
