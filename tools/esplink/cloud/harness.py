"""A Cloud on its own thread and event loop, for tests and benches (start_in_thread)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading

from esplink.cloud.server import Cloud


class Running:
    """A Cloud started by start_in_thread(); call() runs a coroutine on its loop."""

    def __init__(self, cloud, loop, thread):
        self.cloud, self.loop, self.thread = cloud, loop, thread
        self.host, self.data_dir, self.ca_file = cloud.host, cloud.data_dir, cloud.ca_file
        self.tls_port, self.plain_port, self.api_port = cloud.tls_port, cloud.plain_port, cloud.api_port
        self.stopped = False

    def call(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def send_raw(self, device_id, data: bytes):
        self.call(self.cloud.send_raw(device_id, data))

    def online(self, device_id) -> bool:
        return self.call(_value(lambda: self.cloud.online(device_id)))

    def logins(self, device_id) -> int:
        return self.call(_value(lambda: self.cloud.link(device_id).logins))

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        self.call(self.cloud.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


async def _value(fn):
    return fn()


def start_in_thread(data_dir, host="127.0.0.1", **options) -> Running:
    """Start a Cloud on a background thread; ports default to 0 (any free one)."""
    for port in ("tls_port", "plain_port", "api_port"):
        options.setdefault(port, 0)
    loop = asyncio.new_event_loop()
    started = concurrent.futures.Future()
    cloud = Cloud(data_dir, host, **options)

    def run():
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(cloud.start())
        except BaseException as e:
            started.set_exception(e)
        else:
            started.set_result(None)
            loop.run_forever()
        tasks = asyncio.all_tasks(loop)
        for t in tasks:
            t.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    thread = threading.Thread(target=run, name="esplink-cloud", daemon=True)
    thread.start()
    started.result()
    return Running(cloud, loop, thread)
