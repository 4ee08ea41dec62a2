# One connection's conversation with the cloud, sans-IO: the driver tells it what
# arrived and what time it is; it says what to send and what happened.
from micropython import const

from espcloud import proto

try:
    from time import ticks_diff
except ImportError:  # CPython, for the host tests
    def ticks_diff(__a, __b):  # positional-only, as time.ticks_diff (MicroPython has no "/")
        return __a - __b

# Liveness: only a complete frame (a JSON object that parses) proves the link alive.
# Junk, a frame still arriving and the frames Frames drops never reach receive(), so a
# peer that trickles bytes without ever completing a frame is silence here. Ping after
# _PING_MS of silence; as long again without a frame is a dead link. With tick() called
# whenever the driver wakes and at least once a second, a dead link is noticed 100 s
# (plus at most a tick or two) after its last frame, whatever else arrives. An activate
# or identify unanswered for _PING_MS ends the link too.
_PING_MS = const(50000)
_ACTIVATE_RETRY_MS = const(50000)

# what receive() reports
ACTIVATED = "activated"  # persist the flag
ACTIVATE_FAILED = "activate failed"  # retried after _ACTIVATE_RETRY_MS
IDENTIFIED = "identified"  # deliveries may come now
DELIVERY = "delivery"  # dispatch it and send the reply
REJECTED = "rejected"  # the cloud refused the key: close, back off
REPLACED = "replaced"  # another login with our key: close, back off

_REPLACED_TEXT = "close by other peer login"


class Session:
    def __init__(self, key, token, bssid, rom_version, activated, now, ping_ms=_PING_MS):
        self.key = key
        self.token = token
        self.bssid = bssid
        self.rom_version = rom_version
        self.activated = activated
        self.identified = False
        self.ping_ms = ping_ms
        self.waiting = None  # nonce of the activate or identify in flight, sent at asked_at
        self.failed_at = None  # when activation was last refused
        self.pinged = False  # a ping is out and nothing has arrived since
        self.last_rx = now
        self.outbox = []
        self._login(now)

    def take(self):
        """The next message to send, or None."""
        return self.outbox.pop(0) if self.outbox else None

    def _login(self, now):
        n = proto.nonce()
        if self.activated:
            self.outbox.append(proto.identify(n, self.key))
        else:
            self.outbox.append(proto.activate(n, self.key, self.token, self.bssid, self.rom_version))
            self.failed_at = None
        self.waiting = n
        self.asked_at = now

    def receive(self, msg, now):
        """Handle one frame from the cloud; returns one of the events above or None."""
        self.last_rx = now
        self.pinged = False  # a frame proves the link alive
        if msg.get("deliver_to_device") is True and "path" in msg:
            return DELIVERY
        text = msg.get("message")
        if isinstance(text, str) and _REPLACED_TEXT in text:
            return REPLACED
        if self.waiting is None or msg.get("nonce") != self.waiting:
            return None  # a ping reply, or an answer to someone else's question
        self.waiting = None
        status = msg.get("status")
        if not self.activated:
            if status == 200 and _activated(msg):
                self.activated = True
                self._login(now)
                return ACTIVATED
            if status == 401 or status == 403:
                return REJECTED
            self.failed_at = now
            return ACTIVATE_FAILED
        if status == 200:
            self.identified = True
            return IDENTIFIED
        # the cloud no longer knows us as activated: activate afresh next time
        self.activated = False
        return REJECTED

    def tick(self, now):
        """Call whenever the driver wakes, and at least once a second, whatever
        arrived (never only when nothing did). False means the link is dead: close it."""
        if self.failed_at is not None and ticks_diff(now, self.failed_at) >= _ACTIVATE_RETRY_MS:
            self._login(now)
        if self.waiting is not None and ticks_diff(now, self.asked_at) >= self.ping_ms:
            # its answer was lost (a frame dropped, a broken cloud): answered pings would
            # keep this link up, never logged in, for good; a new connection asks again
            return False
        if ticks_diff(now, self.last_rx) >= self.ping_ms:
            if self.pinged:
                return False
            self.outbox.append(proto.ping(proto.nonce(), self.key))
            self.pinged = True
            self.last_rx = now
        return True


def _activated(msg):
    for part in ("device", "key"):
        inner = msg.get(part)
        if isinstance(inner, dict) and inner.get("activate_status") == 1:
            return True
    return False
