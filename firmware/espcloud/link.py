# The cloud link's driver: one connection at a time, kept up forever, with capped
# exponential backoff and jitter so a fleet does not stampede a recovering cloud.
import asyncio
import time

import hw
import settings
from espcloud import actions, proto, session

ROM_VERSION = "v0.1.0t23701(a)"  # the demo's format: ptype 23701 is a plug
_BACKOFF_MIN_MS = 1000
_BACKOFF_MAX_MS = 60000
_REPLACED_FAILURES = 5  # a twin with our key: wait ~30 s before taking the line back
_CA_FILES = ("ca.der", "ca.pem")


class Link:
    """`device` gives the actions their hardware (set_plug, plug, reboot_soon);
    `on_state(up)` hears when the link comes up (identified) and goes down."""

    def __init__(self, s, device, on_state):
        self.s = s
        self.device = device
        self.on_state = on_state
        self.failures = 0
        self.frames = proto.Frames()  # one buffer for the board's lifetime
        self.lock = asyncio.Lock()
        self.ctx = None

    async def run(self):
        if not self.s["device_key"]:
            print("cloud: no device key: flash one with --device-key")
            return
        while True:
            try:
                await self._connection()
            except (OSError, ValueError) as e:  # DNS, TCP and TLS all end up here
                print("cloud: error", repr(e))
            self.on_state(False)
            await asyncio.sleep_ms(self._backoff_ms())

    def _backoff_ms(self):
        ceiling = min(_BACKOFF_MAX_MS, _BACKOFF_MIN_MS << min(self.failures, 6))
        self.failures += 1
        return ceiling // 2 + proto.nonce() % (ceiling // 2 + 1)

    async def _connection(self):
        s = self.s
        host, port = s["server"], s["port"]
        print("cloud: connecting to", host, port, "over TLS" if s["tls"] else "in plain TCP")
        if s["tls"]:
            reader, writer = await asyncio.open_connection(host, port, ssl=self._tls(), server_hostname=host)
        else:
            reader, writer = await asyncio.open_connection(host, port)
        try:
            sess = session.Session(s["device_key"], s["token"], _mac(), ROM_VERSION, s["activated"], time.ticks_ms())
            await self._flush(writer, sess)
            gone = asyncio.Event()
            rx = asyncio.create_task(self._receive(reader, writer, sess, gone))
            try:
                while not gone.is_set():
                    try:
                        await asyncio.wait_for_ms(gone.wait(), 1000)
                    except asyncio.TimeoutError:
                        if not sess.tick(time.ticks_ms()):
                            print("cloud: no answer to ping")
                            break
                        await self._flush(writer, sess)
            finally:
                rx.cancel()
        finally:
            await writer.wait_closed()  # MicroPython's close() alone keeps the socket

    async def _receive(self, reader, writer, sess, gone):
        frames = self.frames
        frames.clear()
        try:
            while True:
                n = await reader.readinto(frames.space())
                if not n:
                    print("cloud: closed by the server")
                    return
                frames.received(n)
                msg = frames.next()
                while msg is not None:
                    if await self._handle(sess.receive(msg, time.ticks_ms()), msg, sess, writer):
                        return
                    await self._flush(writer, sess)
                    msg = frames.next()
        except OSError as e:
            print("cloud: read error", repr(e))
        finally:
            gone.set()

    async def _handle(self, event, msg, sess, writer):
        """Act on a session event; True ends the connection."""
        if event == session.DELIVERY:
            reply = actions.dispatch(self.device, msg)
            print("cloud:", msg.get("path"), (msg.get("get") or {}).get("action", ""), "->", reply[:13].decode())
            await self._send(writer, reply)
        elif event == session.ACTIVATED:
            self._save_activated(True)
            print("cloud: activated")
        elif event == session.ACTIVATE_FAILED:
            print("cloud: activation refused, status", msg.get("status"), "- retrying in 50 s")
        elif event == session.IDENTIFIED:
            print("cloud: identified")
            self.failures = 0
            self.on_state(True)
        elif event == session.REJECTED:
            print("cloud: refused, status", msg.get("status"))
            self._save_activated(sess.activated)
            return True
        elif event == session.REPLACED:
            print("cloud: replaced by another login with this device key")
            self.failures = max(self.failures, _REPLACED_FAILURES)
            return True
        return False

    def _save_activated(self, activated):
        if self.s["activated"] != activated:
            self.s["activated"] = activated
            settings.save(self.s)

    async def _flush(self, writer, sess):
        msg = sess.take()
        while msg is not None:
            await self._send(writer, msg)
            msg = sess.take()

    async def _send(self, writer, data):
        async with self.lock:  # the ticker and the receiver both write
            writer.write(data)
            await writer.drain()

    def _tls(self):
        if self.ctx is None:
            import tls

            ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
            ca = _read_ca()
            if ca and hasattr(ctx, "load_verify_locations"):
                ctx.verify_mode = tls.CERT_REQUIRED
                ctx.load_verify_locations(ca)
            else:
                if ca:  # the ESP8266's axTLS cannot verify anything
                    print("cloud: this port cannot verify the server: CA ignored")
                ctx.verify_mode = tls.CERT_NONE
            self.ctx = ctx
        return self.ctx


def _read_ca():
    for name in _CA_FILES:
        try:
            with open(name, "rb") as f:
                return f.read()
        except OSError:
            pass
    return None


def _mac():
    return ":".join("%02x" % b for b in hw.mac())
