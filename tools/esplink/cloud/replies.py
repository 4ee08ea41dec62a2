"""The cloud's JSON shapes (device, key, token), after the seed's activate reply.

Trimmed to fields we can fill truthfully: the activate reply must stay well under a
board's frame bound (the real one was ~2 KB, ours ~1 KB).
"""
import datetime

# Espressif's cloud spoke Beijing time in "datetime" (its ping reply: 11:07:04 for
# epoch 1436324824, which is 03:07:04 UTC); the boards take the epoch.
CLOUD_TZ = datetime.timezone(datetime.timedelta(hours=8))


def device(dev: dict) -> dict:
    return {
        "id": dev["id"], "name": dev["name"], "serial": f"{dev['id']:08x}",
        "bssid": dev["bssid"], "rom_version": dev["rom_version"], "latest_rom_version": "",
        "status": 1, "activate_status": int(dev["activated"]),
        "activated_at": dev["activated_at"] or "", "last_activated_at": dev["activated_at"] or "",
        "last_active": dev["last_seen"] or "", "created": dev["created"],
        "is_frozen": 0, "is_private": 0, "visibly": 1, "description": "", "metadata": "",
    }


def _key(dev, token, name, created, master):
    return {
        "name": name, "token": token, "device_id": dev["id"], "scope": 3,
        "is_master_key": int(master), "is_owner_key": int(not master),
        "activate_status": 1, "access_methods": "*", "source_ip": "*", "created": created,
    }


def master_key(dev: dict) -> dict:
    return _key(dev, dev["master_key"], "master", dev["created"], True)


def activation_token(dev: dict) -> dict:
    return _key(dev, dev["token"], "owner shared", dev["activated_at"], False)


def owner_key(key: dict, dev: dict) -> dict:
    return dict(_key(dev, key["token"], "owner", key["created"], False), id=key["id"])


def activated(dev: dict) -> dict:
    return {"device": device(dev), "key": master_key(dev), "token": activation_token(dev),
            "status": 200}


def ping(epoch: float) -> dict:
    when = datetime.datetime.fromtimestamp(int(epoch), CLOUD_TZ)
    return {"datetime": when.strftime("%Y-%m-%d %H:%M:%S"), "epoch": int(epoch),
            "message": "ping success", "status": 200}


def error(status: int, message: str, nonce=None) -> dict:
    reply = {"status": status, "message": message}
    if nonce is not None:
        reply["nonce"] = nonce
    return reply
