"""A local stand-in for Espressif's ESP cloud (iot.espressif.cn): the device socket
protocol (spec: espcloud.md) on TLS and plain TCP, plus the REST API phones call.

Modules: certs (CA and server certificate), store (SQLite), protocol (device socket
framing, paths), replies (the cloud's JSON shapes), server (the asyncio server), api (the
HTTPS REST side), client (a REST client), cli (`esplink cloud ...`).
"""
import os
from pathlib import Path


def default_data_dir() -> Path:
    if os.environ.get("ESPLINK_CLOUD_DIR"):
        return Path(os.environ["ESPLINK_CLOUD_DIR"]).expanduser()
    return Path.home() / ".local" / "share" / "esplink" / "cloud"
