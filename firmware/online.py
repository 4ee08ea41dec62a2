# The network world: join the saved network (backing off between tries), then keep the
# cloud link up while on it. Imported only in the network world, as pairing/ only in
# the pairing world, so neither world's code sits in the other's heap.
#
# This module is also the device the cloud link and its actions see: the plug (the LED
# shows it while the cloud is up), reboot_soon(), and on_cloud(up) when the link comes
# up or goes down. Module state, not an object: there is one device.
import asyncio
import gc
import sys

import board
import hw
import wifi

JOIN = "join"
ONLINE = "online"
_JOIN_BACKOFF_S = (10, 30, 60)  # each connect() writes flash on the ESP8266

plug = 1  # on at every boot: steady on = just came online
_cloud_up = False
_join_attempts = 0
_link = None  # one for the boot: it keeps its buffers across reconnections
_mode = JOIN  # the next step


async def run(app):
    """One step of the network world (a join, or online until the network is lost); the
    next step is kept here, so a step an error ended is taken again."""
    global _mode
    print("mode:", _mode)
    gc.collect()
    _mode = await (_join(app) if _mode == JOIN else _online(app.s))


async def _join(app):
    global _join_attempts
    s = app.s
    if await app.connect(s["ssid"], s["password"]) == wifi.CONNECTED:
        _join_attempts = 0
        return ONLINE
    board.show("failed")
    wait = _JOIN_BACKOFF_S[min(_join_attempts, len(_JOIN_BACKOFF_S) - 1)]
    _join_attempts += 1
    await asyncio.sleep(wait)
    return JOIN


async def _online(s):
    global _link
    if _link is None:
        from espcloud.link import Link

        _link = Link(s, sys.modules[__name__])
    on_cloud(False)
    task = asyncio.create_task(_link.run())
    try:
        while wifi.connected():
            await asyncio.sleep(1)
    finally:
        task.cancel()
    print("wifi: lost")
    return JOIN


def on_cloud(up):
    global _cloud_up
    _cloud_up = up
    board.show(("on" if plug else "off") if up else "offline")


def set_plug(x):
    global plug
    plug = x
    if _cloud_up:
        board.show("on" if x else "off")


def reboot_soon():
    hw.stable()  # asked for, not a crash
    asyncio.create_task(_reboot(1000))  # after the reply has gone


async def _reboot(ms):
    await asyncio.sleep_ms(ms)
    hw.reset()
