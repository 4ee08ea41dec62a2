"""The cloud's state behind one interface (Store): accounts and their keys, products,
devices and their keys, shares, datapoints. SQLite (DATA/cloud.db, WAL) is the
embedded default; the schema grows by numbered migrations (PRAGMA user_version), so
a data directory from an older version opens as it is. A server database would be
another class with the same methods.

One Store per thread: the server's lives on its event-loop thread, each CLI command
opens its own. Times are UTC, "YYYY-mm-dd HH:MM:SS".
"""
from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import sqlite3
from pathlib import Path

# Each entry takes the schema from version i to i + 1; never edit one that shipped.
MIGRATIONS = (
    # 1: devices, their owner keys, datapoints (the first release's schema, as it was)
    """
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
    """,
    # 2: accounts, user keys, products, shares, spent activation tokens
    """
    CREATE TABLE users (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        email TEXT NOT NULL UNIQUE,
        password TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE user_keys (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        token TEXT NOT NULL UNIQUE,
        user_id INTEGER NOT NULL REFERENCES users(id),
        created TEXT NOT NULL
    );
    CREATE TABLE products (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id INTEGER REFERENCES users(id),
        name TEXT NOT NULL,
        serial TEXT NOT NULL,
        secret TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE TABLE shares (
        device_id INTEGER NOT NULL REFERENCES devices(id),
        user_id INTEGER NOT NULL REFERENCES users(id),
        created TEXT NOT NULL,
        PRIMARY KEY (device_id, user_id)
    );
    CREATE TABLE spent_tokens (
        token TEXT PRIMARY KEY,
        device_id INTEGER NOT NULL,
        created TEXT NOT NULL
    );
    ALTER TABLE devices ADD COLUMN user_id INTEGER REFERENCES users(id);
    ALTER TABLE devices ADD COLUMN product_id INTEGER REFERENCES products(id);
    ALTER TABLE devices ADD COLUMN secret TEXT NOT NULL DEFAULT '';
    ALTER TABLE keys ADD COLUMN user_id INTEGER REFERENCES users(id);
    INSERT OR IGNORE INTO spent_tokens (token, device_id, created)
        SELECT token, id, COALESCE(activated_at, created) FROM devices WHERE token IS NOT NULL AND token != '';
    """,
)

TOKEN = re.compile(r"[0-9a-z]{40}")  # an activation token, as the phone app makes it
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{1,60}")
# scrypt: 16 MB and ~50 ms a password on this machine; a stolen cloud.db costs that per guess
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def new_key() -> str:
    return secrets.token_hex(20)  # 40 hex chars, like the cloud's keys


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt$%d$%d$%d$%s$%s" % (_SCRYPT["n"], _SCRYPT["r"], _SCRYPT["p"], salt.hex(), digest.hex())


def password_matches(stored: str, password: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


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
        self.db.execute("PRAGMA foreign_keys=ON")
        self.migrate()

    def migrate(self):
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for i in range(version, len(MIGRATIONS)):
            with self.db:
                self.db.executescript("BEGIN;" + MIGRATIONS[i] + f"; PRAGMA user_version = {i + 1};")

    @property
    def version(self) -> int:
        return self.db.execute("PRAGMA user_version").fetchone()[0]

    def close(self):
        self.db.close()

    def _one(self, sql, *args):
        row = self.db.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql, *args):
        return [dict(r) for r in self.db.execute(sql, args)]

    def _write(self, sql, *args):
        with self.db:
            return self.db.execute(sql, args)

    # accounts

    def create_user(self, email: str, password: str) -> dict:
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            raise ValueError("that is not an email address")
        if not isinstance(password, str) or not 8 <= len(password) <= 256:
            raise ValueError("a password has 8 to 256 characters")
        try:
            cur = self._write("INSERT INTO users (email, password, created) VALUES (?, ?, ?)",
                              email.lower(), hash_password(password), now())
        except sqlite3.IntegrityError:
            raise ValueError("an account with that email exists already") from None
        return self.user(cur.lastrowid)

    def user(self, user_id) -> dict | None:
        return self._one("SELECT * FROM users WHERE id = ?", user_id)

    def user_by_email(self, email: str) -> dict | None:
        return self._one("SELECT * FROM users WHERE email = ?", email.lower()) if isinstance(email, str) else None

    def check_login(self, email, password) -> dict | None:
        user = self.user_by_email(email)
        if user is None or not isinstance(password, str) or not password_matches(user["password"], password):
            return None
        return user

    def user_key(self, user_id) -> dict:
        """The account's user key (scope 1), made on first use."""
        key = self._one("SELECT * FROM user_keys WHERE user_id = ? ORDER BY id LIMIT 1", user_id)
        if key is None:
            cur = self._write("INSERT INTO user_keys (token, user_id, created) VALUES (?, ?, ?)",
                              new_key(), user_id, now())
            key = self._one("SELECT * FROM user_keys WHERE id = ?", cur.lastrowid)
        return key

    def by_user_key(self, token) -> dict | None:
        """The user a user key belongs to."""
        return self._one("SELECT users.* FROM user_keys JOIN users ON users.id = user_keys.user_id"
                         " WHERE user_keys.token = ?", token)

    # products

    def product(self, product_id) -> dict | None:
        return self._one("SELECT * FROM products WHERE id = ?", product_id)

    def default_product(self, user_id) -> dict:
        prod = self._one("SELECT * FROM products WHERE user_id IS ? ORDER BY id LIMIT 1", user_id)
        if prod is None:
            cur = self._write("INSERT INTO products (user_id, name, serial, secret, created) VALUES (?, ?, ?, ?, ?)",
                              user_id, "plug", secrets.token_hex(4), new_key(), now())
            prod = self.product(cur.lastrowid)
        return prod

    # devices

    def create_device(self, name=None, user_id=None) -> dict:
        # names go into every activate reply and stand for ids on the command line:
        # short, plain, and never all digits
        if name is not None and (not isinstance(name, str) or not _NAME.fullmatch(name) or name.isdigit()):
            raise ValueError(f"bad device name {name!r}: 1-64 of A-Z a-z 0-9 _ . -, not all digits")
        key = new_key()
        product = self.default_product(user_id)
        with self.db:
            try:
                cur = self.db.execute(
                    "INSERT INTO devices (name, master_key, created, user_id, product_id, secret)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (name or f"pending-{key}", key, now(), user_id, product["id"], new_key()))
            except sqlite3.IntegrityError:
                raise ValueError(f"a device named {name!r} exists already") from None
            if name is None:
                self.db.execute("UPDATE devices SET name = ? WHERE id = ?",
                                (f"device{cur.lastrowid}", cur.lastrowid))
        return self.device(cur.lastrowid)

    def device(self, device_id) -> dict | None:
        return self._one("SELECT * FROM devices WHERE id = ?", device_id)

    def find_device(self, ref: str) -> dict | None:
        """By id (all ASCII digits: "²" is a digit to isdigit(), not to int()) or by name."""
        if ref.isascii() and ref.isdigit():
            return self.device(int(ref))
        return self._one("SELECT * FROM devices WHERE name = ?", ref)

    def devices(self, user_id=None) -> list[dict]:
        """Every device, or those an account owns or was given (shared)."""
        if user_id is None:
            return self._all("SELECT * FROM devices ORDER BY id")
        return self._all("SELECT * FROM devices WHERE user_id = ? OR id IN"
                         " (SELECT device_id FROM shares WHERE user_id = ?) ORDER BY id", user_id, user_id)

    def may_use(self, user_id, device_id) -> bool:
        return bool(self._one("SELECT 1 FROM devices WHERE id = ? AND (user_id = ? OR id IN"
                              " (SELECT device_id FROM shares WHERE user_id = ?))", device_id, user_id, user_id))

    def rename(self, device_id, name: str) -> dict:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.isdigit():
            raise ValueError("bad device name: 1-64 of A-Z a-z 0-9 _ . -, not all digits")
        try:
            self._write("UPDATE devices SET name = ? WHERE id = ?", name, device_id)
        except sqlite3.IntegrityError:
            raise ValueError(f"a device named {name!r} exists already") from None
        return self.device(device_id)

    def delete_device(self, device_id):
        with self.db:
            for table in ("datapoints", "keys", "shares"):
                self.db.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,))
            self.db.execute("DELETE FROM devices WHERE id = ?", (device_id,))

    def share(self, device_id, user_id):
        self._write("INSERT OR IGNORE INTO shares (device_id, user_id, created) VALUES (?, ?, ?)",
                    device_id, user_id, now())

    def by_master_key(self, key: str) -> dict | None:
        return self._one("SELECT * FROM devices WHERE master_key = ?", key)

    def resolve_key(self, key: str) -> dict | None:
        """The device a master or owner key belongs to."""
        return self.by_master_key(key) or self._one(
            "SELECT devices.* FROM keys JOIN devices ON devices.id = keys.device_id"
            " WHERE keys.token = ?", key)

    def activate(self, device_id, token, bssid, rom_version) -> dict:
        """Activate with a phone's token. ValueError when the token has not the phone's
        shape or another activation spent it; the same device again with its token (a
        board retrying) is fine."""
        if not isinstance(token, str) or not TOKEN.fullmatch(token):
            raise ValueError("the activation token must be 40 characters of 0-9 and a-z, as the phone makes it")
        spent = self._one("SELECT device_id FROM spent_tokens WHERE token = ?", token)
        dev = self.device(device_id)
        if spent is not None and (spent["device_id"] != device_id or dev["token"] != token):
            raise ValueError("that activation token was used already: pair again for a new one")
        t = now()
        with self.db:
            # a new token is a new owner who has yet to claim it; the same token again
            # (the board retrying) keeps its claimed state
            self.db.execute("UPDATE devices SET token_claimed = token_claimed * (token IS ?),"
                            " token = ?, bssid = ?, rom_version = ?, activated = 1,"
                            " activated_at = ?, last_seen = ? WHERE id = ?",
                            (token, token, bssid, rom_version, t, t, device_id))
            self.db.execute("INSERT OR IGNORE INTO spent_tokens (token, device_id, created) VALUES (?, ?, ?)",
                            (token, device_id, t))
        return self.device(device_id)

    def set_online(self, device_id, online: bool):
        self._write("UPDATE devices SET online = ?, last_seen = ? WHERE id = ?",
                    int(online), now(), device_id)

    def seen(self, device_id):
        self._write("UPDATE devices SET last_seen = ? WHERE id = ?", now(), device_id)

    def all_offline(self):
        self._write("UPDATE devices SET online = 0")

    # owner keys

    def claim(self, token: str, user_id=None) -> tuple[dict, dict] | None:
        """Turn an activation token into an owner key, once (key row, device row); with
        a user, the device joins that account."""
        dev = self._one("SELECT * FROM devices WHERE token = ? AND activated = 1"
                        " AND token_claimed = 0 ORDER BY activated_at DESC", token)
        if dev is None:
            return None
        key = new_key()
        with self.db:
            self.db.execute("UPDATE devices SET token_claimed = 1, user_id = COALESCE(?, user_id)"
                            " WHERE id = ?", (user_id, dev["id"]))
            # "revoke_prekeys_if_ownerkey": a new owner replaces the previous ones
            self.db.execute("DELETE FROM keys WHERE device_id = ?", (dev["id"],))
            self.db.execute("DELETE FROM shares WHERE device_id = ?", (dev["id"],))
            cur = self.db.execute("INSERT INTO keys (token, device_id, user_id, created) VALUES (?, ?, ?, ?)",
                                  (key, dev["id"], user_id, now()))
        return self._one("SELECT * FROM keys WHERE id = ?", cur.lastrowid), self.device(dev["id"])

    # datapoints

    def add_datapoint(self, device_id, stream: str, datapoint: dict):
        self._write("INSERT INTO datapoints (device_id, stream, json, created) VALUES (?, ?, ?, ?)",
                    device_id, stream, json.dumps(datapoint, sort_keys=True), now())

    def latest_datapoint(self, device_id, stream: str) -> dict | None:
        row = self._one("SELECT json FROM datapoints WHERE device_id = ? AND stream = ?"
                        " ORDER BY id DESC LIMIT 1", device_id, stream)
        return json.loads(row["json"]) if row else None

    def streams(self, device_id) -> list[dict]:
        """The device's datastreams that hold datapoints: name, count, last time."""
        rows = self._all("SELECT stream, COUNT(*) AS count, MAX(created) AS last FROM datapoints"
                         " WHERE device_id = ? GROUP BY stream ORDER BY stream", device_id)
        return [{"name": r["stream"], "count": r["count"], "last": r["last"]} for r in rows]

    def datapoints(self, device_id, stream: str, limit=200) -> list[dict]:
        """The stream's history, oldest first: each datapoint with its time ("at")."""
        rows = self._all("SELECT json, created FROM datapoints WHERE device_id = ? AND stream = ?"
                         " ORDER BY id DESC LIMIT ?", device_id, stream, limit)
        return [dict(json.loads(r["json"]), at=r["created"]) for r in reversed(rows)]
