"""The cloud's state in SQLite (DATA/cloud.db): devices, owner keys, datapoints.

One Store per thread: the server's lives on its event-loop thread, each CLI command
opens its own. Times are UTC, "YYYY-mm-dd HH:MM:SS".
"""
from __future__ import annotations

import datetime
import json
import os
import re
import secrets
import sqlite3
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    master_key TEXT NOT NULL UNIQUE,
    token TEXT,
    token_claimed INTEGER NOT NULL DEFAULT 0,
    bssid TEXT NOT NULL DEFAULT '',
    rom_version TEXT NOT NULL DEFAULT '',
    activated INTEGER NOT NULL DEFAULT 0,
    activated_at TEXT,
    online INTEGER NOT NULL DEFAULT 0,
    last_seen TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    token TEXT NOT NULL UNIQUE,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS datapoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    stream TEXT NOT NULL,
    json TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS datapoints_by_stream ON datapoints(device_id, stream, id);
"""


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def new_key() -> str:
    return secrets.token_hex(20)  # 40 hex chars, like the cloud's keys


class Store:
    def __init__(self, data_dir):
        path = Path(data_dir) / "cloud.db"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # it holds every device's master key: owner-only (SQLite's -wal/-shm follow)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self.db = sqlite3.connect(str(path), timeout=5)
        self.db.row_factory = sqlite3.Row
        # WAL: `esplink cloud devices` can read while the server writes
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)

    def close(self):
        self.db.close()

    def _one(self, sql, *args):
        row = self.db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _write(self, sql, *args):
        with self.db:
            return self.db.execute(sql, args)

    # devices

    def create_device(self, name=None) -> dict:
        # names go into every activate reply and stand for ids on the command line:
        # short, plain, and never all digits
        if name is not None and (not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name)
                                 or name.isdigit()):
            raise ValueError(f"bad device name {name!r}: 1-64 of A-Z a-z 0-9 _ . -, not all digits")
        key = new_key()
        with self.db:
            try:
                cur = self.db.execute(
                    "INSERT INTO devices (name, master_key, created) VALUES (?, ?, ?)",
                    (name or f"pending-{key}", key, now()))
            except sqlite3.IntegrityError:
                raise ValueError(f"a device named {name!r} exists already") from None
            if name is None:
                self.db.execute("UPDATE devices SET name = ? WHERE id = ?",
                                (f"device{cur.lastrowid}", cur.lastrowid))
        return self.device(cur.lastrowid)

    def device(self, device_id) -> dict | None:
        return self._one("SELECT * FROM devices WHERE id = ?", device_id)

    def find_device(self, ref: str) -> dict | None:
        """By id (all digits) or by name."""
        if ref.isdigit():
            return self.device(int(ref))
        return self._one("SELECT * FROM devices WHERE name = ?", ref)

    def devices(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM devices ORDER BY id")]

    def by_master_key(self, key: str) -> dict | None:
        return self._one("SELECT * FROM devices WHERE master_key = ?", key)

    def resolve_key(self, key: str) -> dict | None:
        """The device a master or owner key belongs to."""
        return self.by_master_key(key) or self._one(
            "SELECT devices.* FROM keys JOIN devices ON devices.id = keys.device_id"
            " WHERE keys.token = ?", key)

    def activate(self, device_id, token, bssid, rom_version) -> dict:
        t = now()
        # a new token is a new owner who has yet to claim it; the same token again
        # (the board retrying) keeps its claimed state
        self._write("UPDATE devices SET token_claimed = token_claimed * (token IS ?),"
                    " token = ?, bssid = ?, rom_version = ?, activated = 1,"
                    " activated_at = ?, last_seen = ? WHERE id = ?",
                    token, token, bssid, rom_version, t, t, device_id)
        return self.device(device_id)

    def set_online(self, device_id, online: bool):
        self._write("UPDATE devices SET online = ?, last_seen = ? WHERE id = ?",
                    int(online), now(), device_id)

    def seen(self, device_id):
        self._write("UPDATE devices SET last_seen = ? WHERE id = ?", now(), device_id)

    def all_offline(self):
        self._write("UPDATE devices SET online = 0")

    # owner keys

    def claim(self, token: str) -> tuple[dict, dict] | None:
        """Turn an activation token into an owner key, once. (key row, device row)"""
        dev = self._one("SELECT * FROM devices WHERE token = ? AND activated = 1"
                        " AND token_claimed = 0 ORDER BY activated_at DESC", token)
        if dev is None:
            return None
        key = new_key()
        with self.db:
            self.db.execute("UPDATE devices SET token_claimed = 1 WHERE id = ?", (dev["id"],))
            # "revoke_prekeys_if_ownerkey": a new owner replaces the previous ones
            self.db.execute("DELETE FROM keys WHERE device_id = ?", (dev["id"],))
            cur = self.db.execute("INSERT INTO keys (token, device_id, created) VALUES (?, ?, ?)",
                                  (key, dev["id"], now()))
        return self._one("SELECT * FROM keys WHERE id = ?", cur.lastrowid), dev

    # datapoints

    def add_datapoint(self, device_id, stream: str, datapoint: dict):
        self._write("INSERT INTO datapoints (device_id, stream, json, created) VALUES (?, ?, ?, ?)",
                    device_id, stream, json.dumps(datapoint, sort_keys=True), now())

    def latest_datapoint(self, device_id, stream: str) -> dict | None:
        row = self._one("SELECT json FROM datapoints WHERE device_id = ? AND stream = ?"
                        " ORDER BY id DESC LIMIT 1", device_id, stream)
        return json.loads(row["json"]) if row else None
