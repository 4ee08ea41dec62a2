# The cloud link's driver: one connection at a time, kept up forever, with capped
# exponential backoff and jitter so a fleet does not stampede a recovering cloud.
import asyncio
import time

from micropython import const

import hw
import settings
from espcloud import actions, proto, session
from espcloud.transport import Transport

ROM_VERSION = "v0.1.0t23701(a)"  # the demo's format: ptype 23701 is a plug
_BACKOFF_MS = const(1000)  # doubling per failure ...
_BACKOFF_MAX_MS = const(60000)  # ... up to a minute
_TICK_MS = const(1000)


class Link:
    """`device` gives the actions their hardware (set_plug, plug, reboot_soon) and
    hears when the link is up (identified) and down: on_cloud(up)."""

    def __init__(self, s, device):
        self.s = s
        self.device = device
        self.failures = 0
        self.frames = proto.Frames()  # one buffer for the board's lifetime
        self.transport = None

    async def run(self):
        if not self.s["device_key"]:
            print("cloud: no device key (flash one with --device-key)")
            return
        if self.transport is None:  # not before: it holds axTLS's room
            self.transport = Transport(self.s)
        transport = self.transport
        while True:
            try:
                await self._connection(transport)
            except (OSError, ValueError, asyncio.TimeoutError) as e:  # DNS, TCP, TLS, a stalled server
                print("cloud: error", repr(e))
            self.device.on_cloud(False)
            ceiling = min(_BACKOFF_MAX_MS, _BACKOFF_MS << min(self.failures, 6))
            self.failures += 1
            await asyncio.sleep_ms(ceiling // 2 + proto.nonce() % (ceiling // 2))

    async def _connection(self, transport):
        s = self.s
        print("cloud: connecting to", s["server"], s["port"], "TLS" if s["tls"] else "plain")
        stream = await transport.open()
        try:
            sess = session.Session(s["device_key"], s["token"], _mac(), ROM_VERSION, s["activated"],
                                   time.ticks_ms())
            await self._talk(transport, stream, sess)
        finally:
            await transport.close(stream)

    async def _talk(self, transport, stream, sess):
        frames = self.frames
        frames.clear()
        while True:
            # the session's clock runs on every wake-up, not only when a read times out:
            # a peer trickling junk faster than the timeout must not keep a dead link up
            if not sess.tick(time.ticks_ms()):
                print("cloud: no answer to", "ping" if sess.waiting is None else "login")
                return
            msg = sess.take()
            while msg is not None:
                await transport.send(stream, msg)
                msg = sess.take()
            space = frames.space()
            try:
                n = await asyncio.wait_for_ms(stream.readinto(space), _TICK_MS)
            except asyncio.TimeoutError:
                continue
            if n is None:
                continue  # TLS wanted more bytes before it had any for us
            if not n:
                print("cloud: closed by the server")
                return
            while True:
                frames.received(n)
                msg = frames.next()
                while msg is not None:
                    if type(msg) is bytes:  # Frames' answer to a frame it dropped: not a sign of life
                        print("cloud: dropped a frame, answered", msg)
                        await transport.send(stream, msg)
                    elif await self._handle(sess.receive(msg, time.ticks_ms()), msg, sess, transport, stream):
                        return
                    msg = frames.next()
                if n < len(space):
                    break
                # the read filled its space: TLS may hold decrypted bytes poll() cannot see
                space = frames.space()  # (an oversize frame's answer waits in Frames)
                n = transport.read_now(space) or 0  # nothing more (None), or closed (0): the next read says so

    async def _handle(self, event, msg, sess, transport, stream):
        """Act on a session event; True ends the connection."""
        if event == session.DELIVERY:
            status, reply = actions.dispatch(self.device, msg)
            # of the parameters only the action: the others (and meta) may hold secrets
            get = msg.get("get")
            name = get.get("action") if isinstance(get, dict) else None
            print("cloud:", msg.get("path"), {"action": name if isinstance(name, str) else None}, "->", status)
            await transport.send(stream, reply)
            return False
        status = msg.get("status")
        if event == session.ACTIVATED:
            self._save_activated(True)
            print("cloud: activated")
        elif event == session.ACTIVATE_FAILED:
            print("cloud: activation refused (%s), again in 50 s" % status)
        elif event == session.IDENTIFIED:
            print("cloud: identified")
            self.failures = 0
            self.device.on_cloud(True)
        elif event == session.REJECTED:
            print("cloud: refused (%s)" % status)
            self._save_activated(sess.activated)
            return True
        elif event == session.REPLACED:
            print("cloud: replaced by another login with this device key")
            self.failures = 5  # ~30 s before taking the line back
            return True
        return False

    def _save_activated(self, activated):
        if self.s["activated"] != activated:
            self.s["activated"] = activated
            settings.save(self.s)


def _mac():
    return ":".join("%02x" % b for b in hw.mac())
