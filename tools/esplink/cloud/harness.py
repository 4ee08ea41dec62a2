"""An event loop on its own thread, for tests and benches: a Cloud (start_in_thread)
or a fleet of simulated devices (simulate.FleetThread)."""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading


class LoopThread:
    """A running event loop on a daemon thread; call() runs a coroutine on it."""

    def __init__(self, name, loop=None, thread=None):
        self.loop = loop or asyncio.new_event_loop()
        self.thread = thread or threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        if thread is None:
            self.thread.start()
        self.stopped = False

    def call(self, coro, timeout=10.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def finish(self, stop, timeout=10.0):
        """Run the coroutine `stop()` makes (the owner's stop), then end the loop and its
        thread; once (so a second stop makes no coroutine that is never awaited)."""
        if self.stopped:
            return
        self.stopped = True
        try:
            self.call(stop(), timeout)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            if not self.thread.is_alive() and not self.loop.is_closed():
                self.loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        raise NotImplementedError


async def value(fn):
    """fn()'s value, computed on the loop's thread."""
    return fn()


class Running(LoopThread):
    """A Cloud started by start_in_thread()."""

    def __init__(self, cloud, loop, thread):
        super().__init__("esplink-cloud", loop, thread)
        self.cloud = cloud
        self.host, self.data_dir, self.ca_file = cloud.host, cloud.data_dir, cloud.ca_file
        self.tls_port, self.plain_port, self.api_port = cloud.tls_port, cloud.plain_port, cloud.api_port

    def send_raw(self, device_id, data: bytes):
        self.call(self.cloud.send_raw(device_id, data))

    def online(self, device_id) -> bool:
        return self.call(value(lambda: self.cloud.online(device_id)))

    def logins(self, device_id) -> int:
        return self.call(value(lambda: self.cloud.link(device_id).logins))

    def stop(self):
        self.finish(self.cloud.stop)


def start_in_thread(data_dir, host="127.0.0.1", **options) -> Running:
    """Start a Cloud on a background thread; ports default to 0 (any free one)."""
    for port in ("tls_port", "plain_port", "api_port"):
        options.setdefault(port, 0)
    from esplink.cloud.server import Cloud  # cryptography, aiohttp: only where a cloud runs

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
