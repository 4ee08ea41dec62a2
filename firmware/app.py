# The mode state machine: boot -> join or pair -> online; the button -> pair.
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

_FAILED_SHOW_MS = 10000  # how long the failed pattern shows before pairing blinks again
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
        self.mode = JOIN if s["ssid"] else PAIR
        self.task = None
        self.next = None  # a mode the button asked for
        self.failed = False  # the last pairing attempt could not join
        self.join_attempts = 0

    def switch(self, mode):
        # recorded, not assigned: the current mode may be returning its own next mode
        self.next = mode
        if self.task:
            self.task.cancel()

    def on_short(self):
        print("button: short press")
        if (self.next or self.mode) != PAIR:
            self.switch(PAIR)

    def on_long(self):
        print("button: factory reset")
        settings.forget(self.s, hw.PLATFORM)
        settings.save(self.s)
        self.failed = False  # pair() leaves the old network
        self.switch(PAIR)

    async def run(self):
        asyncio.create_task(self.led.run())
        asyncio.create_task(self.button.run())
        asyncio.create_task(_feed(hw.watchdog()))
        modes = {PAIR: self.pair, JOIN: self.join, ONLINE: self.online}
        errors = 0
        while True:
            print("mode:", self.mode)
            gc.collect()
            self.task = asyncio.create_task(modes[self.mode]())
            try:
                mode = await self.task
                errors = 0
            except asyncio.CancelledError:
                mode = self.mode
            except Exception as e:  # MemoryError above all: free what we can, try again
                print("error:", repr(e))
                errors = min(errors + 1, 6)
                await asyncio.sleep(1 << errors)  # 2 s .. 64 s: ap_up()/connect() write flash
                mode = self.mode
            self.task = None
            self.mode, self.next = self.next or mode, None

    async def pair(self):
        s = self.s
        from pairing.server import Server  # resident only while pairing

        wifi.leave()
        ssid = s["ap_ssid"] or "ITEAD-" + s["deviceid"]
        wifi.ap_up(ssid, s["ap_password"], s["ap_ip"])
        print("ap: up", ssid, s["ap_ip"])
        server = Server(s)
        try:
            await server.start(*hw.listen_addr(s["http_port"]))
            pairing = await self._wait_for_pairing(server)
            if not pairing:
                print("pairing: window closed")
                return JOIN
            await asyncio.sleep_ms(300)  # let {"error":0} leave before the AP goes
        finally:
            await server.stop()
            wifi.ap_down()
            print("ap: down")
        self.led.show("joining")
        result = await wifi.join(pairing["ssid"], pairing["password"], s["join_timeout"])
        print("wifi:", result)
        if result != wifi.CONNECTED:
            self.failed = True
            return PAIR  # nothing was saved: the old settings stand
        settings.apply_pairing(s, pairing)
        settings.save(s)
        self.failed = False
        print("pairing: saved")
        return ONLINE

    async def _wait_for_pairing(self, server):
        # a window only when there is a network to go back to
        window_ms = self.s["pair_window"] * 1000 if self.s["ssid"] else 0
        self.led.show("failed" if self.failed else "pairing")
        waited = 0
        while not server.pairing:
            await asyncio.sleep_ms(200)
            waited += 200
            if waited == _FAILED_SHOW_MS:
                self.led.show("pairing")
            if window_ms and waited >= window_ms:
                return None
        return server.pairing

    async def join(self):
        s = self.s
        self.led.show("joining")
        result = await wifi.join(s["ssid"], s["password"], s["join_timeout"])
        print("wifi:", result)
        if result == wifi.CONNECTED:
            self.join_attempts = 0
            return ONLINE
        self.led.show("failed")
        wait = _JOIN_BACKOFF_S[min(self.join_attempts, len(_JOIN_BACKOFF_S) - 1)]
        self.join_attempts += 1
        await asyncio.sleep(wait)
        return JOIN

    async def online(self):
        self.led.show("connected")
        while wifi.connected():
            await asyncio.sleep(1)
        print("wifi: lost")
        return JOIN


async def _feed(wdt):
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
