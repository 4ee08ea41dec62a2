# For bench/cloud.py, runs on the MicroPython VM in place of the virtual board's
# runner: one asyncio task that prints the names of the loaded modules whenever they
# change, then the board's own runner (.vboard/runner.py, argv unchanged) boots the
# firmware, whose asyncio.run() runs the task alongside the app. It shows, from
# inside the VM, whether any `pairing` module is resident while the board is online.
import sys

import asyncio


async def _probe():
    seen = None
    while True:
        names = sorted(sys.modules)
        if names != seen:
            print("probe: modules", " ".join(names))
            seen = names
        del names
        await asyncio.sleep_ms(100)


asyncio.create_task(_probe())
with open(sys.argv[1] + "/runner.py") as f:
    _runner = f.read()
exec(_runner, {"__name__": "__main__"})
