"""The cloud's JSON shapes: device, keys, activation token, user, product. The device,
key and token objects have exactly the fields of the seed's replies (its POST /v1/keys/
and activation), with the types it shows; what this cloud has no notion of (location,
product batches, ...) is the seed's empty value. The activate reply stays under a
board's 2 KB frame (the seed's real one was ~1.6 KB; tests check ours).
"""
import datetime

# Espressif's cloud spoke Beijing time in "datetime" (its ping reply: 11:07:04 for
# epoch 1436324824, which is 03:07:04 UTC); the boards take the epoch.
CLOUD_TZ = datetime.timezone(datetime.timedelta(hours=8))
_NEVER = "0001-01-01 08:05:57"  # the seed's "not yet" time
_EXPIRES = "2119-11-02 00:00:00"  # the seed's keys expire a century on
PTYPE = 23701  # a plug, as the firmware's rom_version says


def device(dev: dict) -> dict:
    active = dev["last_seen"] or _NEVER
    return {
        "id": dev["id"], "created": dev["created"], "updated": dev["activated_at"] or dev["created"],
        "visibly": 1, "ptype": PTYPE, "product_id": dev.get("product_id") or 0, "productbatch_id": 0,
        "name": dev["name"], "description": "", "serial": f"{dev['id']:08x}", "bssid": dev["bssid"],
        "is_private": 0, "is_frozen": 0, "status": 1, "metadata": "", "key_id": dev["id"], "location": "",
        "last_push": active, "last_pull": active, "last_active": active,
        "last_activated_at": dev["activated_at"] or _NEVER, "activate_status": int(dev["activated"]),
        "activated_at": dev["activated_at"] or _NEVER, "rom_version": dev["rom_version"], "latest_rom_version": "",
    }


def listed(dev: dict) -> dict:
    """A device in an account's list: its object, and whether it is online now."""
    return dict(device(dev), online=int(dev["online"]), user_id=dev.get("user_id") or 0)


def _key(key_id, token, name, created, user_id, device_id, scope, master, owner):
    return {
        "id": key_id, "created": created, "updated": created, "visibly": 1, "authorized_user_id": 0,
        "name": name, "scope": scope, "user_id": user_id or 0, "product_id": 0, "device_id": device_id,
        "datastream_tmpl_id": 0, "datastream_id": 0, "access_methods": "*", "source_ip": "*", "token": token,
        "level": 0, "is_master_key": int(master), "is_owner_key": int(owner), "activate_status": 1,
        "expired_at": _EXPIRES,
    }


def user_key(key: dict) -> dict:
    """A user key (scope 1), as the seed's POST /v1/keys/ shows it."""
    return _key(key["id"], key["token"], "", key["created"], key["user_id"], 0, 1, False, False)


def master_key(dev: dict) -> dict:
    return _key(dev["id"], dev["master_key"], "master", dev["created"], dev.get("user_id"), dev["id"], 3, True, False)


def owner_key(key: dict, dev: dict) -> dict:
    return _key(key["id"], key["token"], "owner", key["created"], key.get("user_id"), dev["id"], 3, False, True)


def activation_token(dev: dict) -> dict:
    """The activation's token object, as in the seed's activate reply."""
    at = dev["activated_at"]
    expires = (datetime.datetime.strptime(at, "%Y-%m-%d %H:%M:%S") + datetime.timedelta(minutes=10)).strftime(
        "%Y-%m-%d %H:%M:%S")
    return {
        "id": dev["id"], "created": at, "updated": at, "visibly": 1, "name": "owner shared", "scope": 3,
        "user_id": dev.get("user_id") or 0, "product_id": 0, "device_id": dev["id"], "datastream_tmpl_id": 0,
        "datastream_id": 0, "access_methods": "*", "source_ip": "*", "token": dev["token"], "is_owner_key": 1,
        "activate_status": 1, "expired_at": _EXPIRES, "generated_at": _NEVER, "token_expired_at": expires,
        "delete_after_used": 0, "revoke_prekeys_if_ownerkey": 1,
    }


def activated(dev: dict) -> dict:
    return {"device": device(dev), "key": master_key(dev), "token": activation_token(dev), "status": 200}


def user(u: dict) -> dict:
    return {"id": u["id"], "email": u["email"], "created": u["created"]}


def product(prod: dict) -> dict:
    return {"id": prod["id"], "name": prod["name"], "serial": prod["serial"]}


def ping(epoch: float) -> dict:
    when = datetime.datetime.fromtimestamp(int(epoch), CLOUD_TZ)
    return {"datetime": when.strftime("%Y-%m-%d %H:%M:%S"), "epoch": int(epoch),
            "message": "ping success", "status": 200}


def error(status: int, message: str, nonce=None) -> dict:
    reply = {"status": status, "message": message}
    if nonce is not None:
        reply["nonce"] = nonce
    return reply
