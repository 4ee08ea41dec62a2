# The mode state machine. A boot lives in one of two worlds: pairing (the AP and its
# HTTP server) or the network (join, then the cloud link). Crossing between them
# is a reset, so the heap never holds both worlds' code and never fragments
# between them.
import asyncio
import gc
import os

import board
import hw
import settings
import wifi

PAIR = "pair"
JOIN = "join"
ONLINE = "online"

_PAIR_REQUEST = b"pair"  # RTC memory: the next boot starts pairing
_JOIN_BACKOFF_S = (10, 30, 60)  # each connect() writes flash on the ESP8266


class App:
    def __init__(self):
        s = settings.load(hw.PLATFORM)
        if not (s["deviceid"] and s["apikey"] and s["chipid"]):
            settings.make_identity(s, hw.mac(), hw.unique_id(), os.urandom(16))
            settings.save(s)
        self.s = s
        wifi.ap_down()  # a fresh ESP8266 starts its own open "MicroPython-xxxx" AP
        self.led = board.Led(s["led_pin"], s["led_active_low"])
        self.button = board.Button(s["button_pin"], s["button_active_low"], self.on_short, self.on_long)
        asked = hw.boot_request()
        self.mode = PAIR if not s["ssid"] or asked == _PAIR_REQUEST else JOIN
        self.pressed = False  # a short press while pairing, not yet taken
        self.join_attempts = 0
        self.link = None
        self.cloud_up = False
        self.plug = 1  # online, the LED shows the plug: on at boot, so steady on = just came online

    def on_short(self):
        print("button: short press")
        if self.mode == PAIR:
            self.pressed = True  # AP mode <-> touch mode: the pairing world takes it
        else:
            hw.reset(_PAIR_REQUEST)

    def on_long(self):
        print("button: factory reset")
        settings.forget(self.s, hw.PLATFORM)
        settings.save(self.s)
        hw.reset()

    async def run(self):
        asyncio.create_task(self.led.run())
        asyncio.create_task(self.button.run())
        asyncio.create_task(_feed(hw.watchdog(max(2, self.s["watchdog"]) * 1000)))
        modes = {PAIR: self.pair, JOIN: self.join, ONLINE: self.online}
        errors = 0
        while True:
            print("mode:", self.mode)
            gc.collect()
            try:
                self.mode = await modes[self.mode]()
                errors = 0
            except Exception as e:  # MemoryError above all: free what we can, try again
                print("error:", repr(e))
                errors = min(errors + 1, 6)
                await asyncio.sleep(1 << errors)  # 2 s .. 64 s: ap_up()/connect() write flash

    async def pair(self):
        from pairing import mode  # the pairing world: never resident online

        return await mode.run(self)

    def take_press(self):
        pressed, self.pressed = self.pressed, False
        return pressed

    async def connect(self, ssid, password):
        """Join a network with the joining pattern showing; the outcome (wifi.*)."""
        self.led.show("joining")
        result = await wifi.join(ssid, password, self.s["join_timeout"])
        print("wifi:", result)
        return result

    async def join(self):
        s = self.s
        result = await self.connect(s["ssid"], s["password"])
        if result == wifi.CONNECTED:
            self.join_attempts = 0
            return ONLINE
        self.led.show("failed")
        wait = _JOIN_BACKOFF_S[min(self.join_attempts, len(_JOIN_BACKOFF_S) - 1)]
        self.join_attempts += 1
        await asyncio.sleep(wait)
        return JOIN

    async def online(self):
        from espcloud.link import Link  # resident only in the network world

        if self.link is None:
            self.link = Link(self.s, self)
        self.on_cloud(False)
        task = asyncio.create_task(self.link.run())
        try:
            while wifi.connected():
                await asyncio.sleep(1)
        finally:
            task.cancel()
        print("wifi: lost")
        return JOIN

    # what the cloud link and its actions see of the device

    def on_cloud(self, up):
        self.cloud_up = up
        self.led.show(("on" if self.plug else "off") if up else "offline")

    def set_plug(self, x):
        self.plug = x
        if self.cloud_up:
            self.led.show("on" if x else "off")

    def reboot_soon(self):
        asyncio.create_task(_reboot(1000))  # after the reply has gone


async def _reboot(ms):
    await asyncio.sleep_ms(ms)
    hw.reset()


async def _feed(wdt):
    # the longest legitimate stall (a DNS lookup that lwIP gives up on, a TLS handshake
    # on the ESP8266) is well inside the watchdog's limit
    while True:
        wdt.feed()
        await asyncio.sleep_ms(1000)


def _crashed(loop, context):
    # A helper task (LED, button, a connection) died of something unexpected,
    # most likely an exhausted heap: a clean boot beats limping on without it.
    print("error:", repr(context["exception"]), "- resetting")
    hw.reset()


def main():
    asyncio.get_event_loop().set_exception_handler(_crashed)
    asyncio.run(App().run())
