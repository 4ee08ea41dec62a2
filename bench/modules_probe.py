# For bench/cloud.py, run by the virtual board's runner before boot (--prelude): one
# asyncio task that prints the names of the loaded modules whenever they change; the
# firmware's asyncio.run() runs it alongside the app. It shows, from inside the VM,
# whether any `pairing` module is resident while the board is online.
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
