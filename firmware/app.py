# The boot and its two worlds. A boot lives in one of them: pairing (pairing/mode.py:
# the AP and its HTTP server, or touch mode) or the network (online.py: join, then the
# cloud link). Crossing between them is a reset, so the heap never holds both worlds'
# code and never fragments between them.
import asyncio
import gc
import os
import sys

from micropython import const

import board
import hw
import wifi

_PAIR_REQUEST = b"pair"  # RTC memory: the next boot starts pairing
# Safe mode (ESPHome's idea, for a board nobody reaches with a cable): after this many
# boots in a row that crashed or reset before a stable state, the next one pairs (the
# cloud link off, the LED's "safe" pattern, no pairing window) until a press, a pairing
# or a power cut. A stable state is the pairing server serving, or _STABLE_S up; not
# "the cloud identified": a crash right after it (something the cloud sends) would loop
# forever. A reboot the cloud asks for is no crash. The count is in RTC memory
# (hw.boot_state), so a power cut ends it.
_SAFE_AFTER = const(3)
_STABLE_S = const(120)


class App:
    def __init__(self):
        asked, boots = hw.boot_state()  # first: a boot that dies in what follows counts too
        import recover  # boot-time code: out of the heap once the settings are in RAM

        s = recover.load(hw.PLATFORM, (hw.mac(), hw.unique_id(), os.urandom(16)))
        # settings (saving) and jsonobj (parsing) came with it; they too stay out of the
        # heap until something needs them: a world's peak is not where they are used
        del sys.modules["recover"], sys.modules["settings"], sys.modules["jsonobj"]
        self.s = s
        wifi.ap_down()  # a fresh ESP8266 starts its own open "MicroPython-xxxx" AP
        self.safe = boots > _SAFE_AFTER
        if self.safe:
            print("safe mode: %d boots without reaching a stable state" % (boots - 1))
            board.safe = True
            # no pairing window back to the network that crashed (it would come back here,
            # and each AP start writes flash on the ESP8266); in RAM only, never saved
            self.window = s["pair_window"]
            s["pair_window"] = 0
        self.pairing = self.safe or not s["ssid"] or asked == _PAIR_REQUEST  # which world
        self.pressed = False  # a short press while pairing, not yet taken
        self.feed = hw.watchdog(max(2, s["watchdog"]) * 1000)  # fed every second by the board's beat
        self.up = 0  # seconds since boot

    def on_short(self):
        print("button: short press")
        if self.safe:
            self.leave_safe()
            hw.reset()  # a normal boot tries the network again
        elif self.pairing:
            self.pressed = True  # AP mode <-> touch mode: the pairing world takes it
        else:
            hw.reset(_PAIR_REQUEST)

    def on_long(self):
        import settings

        print("button: factory reset")
        if self.safe:
            self.leave_safe()
        settings.forget(self.s, hw.PLATFORM)
        settings.save(self.s)
        hw.reset()

    def leave_safe(self):
        print("safe mode: left")  # after the line that says why (a press, a join)
        self.safe = board.safe = False
        self.s["pair_window"] = self.window  # before anything saves the settings
        hw.stable()

    async def run(self):
        asyncio.create_task(board.run(self.s, self.on_short, self.on_long, self.each_second))
        errors = 0
        while True:
            gc.collect()
            try:
                if self.pairing:
                    from pairing import mode as world
                else:
                    import online as world
                # the pairing world ends in a reset; the network world returns after each step
                await world.run(self)
                errors = 0
            except Exception as e:  # MemoryError above all: free what we can, try again
                print("error:", repr(e))
                errors = min(errors + 1, 6)
                await asyncio.sleep(1 << errors)  # 2 s .. 64 s: ap_up()/connect() write flash

    def each_second(self):
        # from the board's beat: an event loop that stops running stops the feeding. The
        # longest legitimate stall (a DNS lookup that lwIP gives up on, a TLS handshake on
        # the ESP8266) is well inside the watchdog's limit.
        self.feed()
        self.up += 1
        if self.up == _STABLE_S:
            hw.stable()

    def take_press(self):
        # the pairing server asks this every 200 ms while it serves: a stable state
        hw.stable()
        pressed, self.pressed = self.pressed, False
        return pressed

    async def connect(self, ssid, password):
        """Join a network with the joining pattern showing; the outcome (wifi.*)."""
        board.show("joining")
        result = await wifi.join(ssid, password, self.s["join_timeout"])
        print("wifi:", result)
        if self.safe and result == wifi.CONNECTED:
            self.leave_safe()  # a pairing joined: it saves next, then a normal boot
        return result


def _crashed(loop, context):
    # A helper task (LED, button, a connection) died of something unexpected,
    # most likely an exhausted heap: a clean boot beats limping on without it.
    print("error:", repr(context["exception"]), "- resetting")
    hw.reset()


def main():
    asyncio.get_event_loop().set_exception_handler(_crashed)
    asyncio.run(App().run())
