"""The user's own workflow (seed 001, "乐鑫云对接"), replayed against the local cloud with
the seed's curl command lines (host, keys and the seed's :placeholders substituted),
each reply's shape (key set, value types, status) compared with the seed's JSON.
Steps 5-6 speak the device socket as the seed's network tool did."""
import json
import secrets
import shlex
import subprocess

from cloud_fakes import FakeDevice

# the seed's step 2 reply, verbatim
SEED_KEYS = json.loads("""{"keys": [{"id": 406071, "created": "2019-11-26 14:56:56", "updated": "2019-11-26 14:56:56",
"visibly": 1, "authorized_user_id": 0, "name": "", "scope": 1, "user_id": 19950, "product_id": 0, "device_id": 0,
"datastream_tmpl_id": 0, "datastream_id": 0, "access_methods": "*", "source_ip": "*",
"token": "bd1c200d3badafef9eeaa3284cf358574d12e805", "level": 0, "is_master_key": 0, "is_owner_key": 0,
"activate_status": 1, "expired_at": "2119-11-02 14:56:56"}], "status": 200}""")
# the seed's step 4 reply, verbatim
SEED_ACTIVATE = json.loads("""{"device": {"id": 301897, "created": "2019-11-26 15:04:52", "updated": "2019-11-26 16:30:43",
"visibly": 1, "ptype": 34100, "product_id": 8461, "productbatch_id": 0, "name": "ESP8266_TEST", "description": "",
"serial": "a5b3488e", "bssid": ":bssid", "is_private": 0, "is_frozen": 0, "status": 1, "metadata": "",
"key_id": 406072, "location": "", "last_push": "0001-01-01 08:05:57", "last_pull": "0001-01-01 08:05:57",
"last_active": "0001-01-01 08:05:57", "last_activated_at": "2019-11-26 16:30:43", "activate_status": 1,
"activated_at": "2019-11-26 16:30:43", "rom_version": "", "latest_rom_version": ""}, "key": {"id": 406072,
"created": "2019-11-26 15:04:52", "updated": "2019-11-26 15:04:52", "visibly": 1, "authorized_user_id": 0,
"name": "master", "scope": 3, "user_id": 19950, "product_id": 0, "device_id": 301897, "datastream_tmpl_id": 0,
"datastream_id": 0, "access_methods": "*", "source_ip": "*", "token": "1cc05be71fb3f81bcba98acbd8fbff3a079461e5",
"level": 0, "is_master_key": 1, "is_owner_key": 0, "activate_status": 1, "expired_at": "2119-11-02 15:04:52"},
"status": 200, "token": {"id": 15581115, "created": "2019-11-26 16:30:43", "updated": "2019-11-26 16:30:43",
"visibly": 1, "name": "owner shared", "scope": 3, "user_id": 19950, "product_id": 0, "device_id": 301897,
"datastream_tmpl_id": 0, "datastream_id": 0, "access_methods": "*", "source_ip": "*", "token": ":token",
"is_owner_key": 1, "activate_status": 1, "expired_at": "2119-11-02 16:30:43", "generated_at": "0001-01-01 08:05:57",
"token_expired_at": "2019-11-26 16:40:43", "delete_after_used": 0, "revoke_prekeys_if_ownerkey": 1}}""")
# the seed's step 2 and step 4 command lines, verbatim
SEED_STEP2 = """curl -d '{"email":"171226061@qq.com","password":"171226061fjh","scope":"user"}' https://iot.espressif.cn/v1/keys/"""
SEED_STEP4 = """curl -X POST -H "Authorization: token 1cc05be71fb3f81bcba98acbd8fbff3a079461e5" -d '{"encrypt_method": "PLAIN", "bssid": ":bssid", "token": ":token"}' https://iot.espressif.cn/v1/device/activate/"""
# the seed's RPC as the device received it (step 6), its braces restored
SEED_DELIVERY = {"deliver_to_device": True, "get": {"action": "LED_ON"},
                 "meta": {"Authorization": "token 9974fa976f5f7f4a22b1f30fc4881c1bfbdeb86c", "Time-Zone": "Asia/Shanghai"},
                 "method": "GET", "nonce": 912639262, "path": "/v1/device/rpc/"}


def shape(value):
    """Key sets and value types, all the way down."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def curl(cloud, command, **subst):
    """Run one of the seed's curl lines against the local cloud: the host becomes it,
    and the seed's values are swapped for this run's."""
    for seed_value, ours in subst.items():
        command = command.replace(seed_value, ours)
    argv = shlex.split(command.replace("https://iot.espressif.cn", f"https://127.0.0.1:{cloud.api_port}"))
    done = subprocess.run(argv[:1] + ["-s", "--cacert", str(cloud.ca_file)] + argv[1:],
                          capture_output=True, text=True, timeout=20)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_seeds_workflow_verbatim(cloud, api):
    # 1. a user, in the console (here: its REST call)
    status, joined = api.request("POST", "/v1/user/join/", body={"email": "171226061@qq.com", "password": "171226061fjh"})
    assert status == 200 and joined["user"]["email"] == "171226061@qq.com"

    # 2. the user key, with the seed's curl
    keys = curl(cloud, SEED_STEP2)
    assert shape(keys) == shape(SEED_KEYS) and keys["status"] == 200
    user_key = keys["keys"][0]
    assert user_key["scope"] == 1 and user_key["token"] == joined["key"]["token"]

    # 3. a device in the console: Product, Device Secret, Master Device Key
    status, made = api.request("POST", "/v1/user/devices/", user_key["token"], {"name": "ESP8266_TEST"})
    assert status == 200
    master = made["key"]["token"]
    assert shape(made["key"]) == shape(SEED_ACTIVATE["key"])
    assert {"id", "name", "serial", "secret"} <= set(made["product"]) and len(made["device"]["secret"]) == 40

    # 4. activation over HTTP, with the seed's curl: the master key, a phone-made token
    token = secrets.token_hex(20)
    reply = curl(cloud, SEED_STEP4, **{"1cc05be71fb3f81bcba98acbd8fbff3a079461e5": master,
                                       '":bssid"': '"18:fe:34:a1:b2:c3"', '":token"': f'"{token}"'})
    assert shape(reply) == shape(SEED_ACTIVATE) and reply["status"] == 200
    assert reply["device"]["activate_status"] == 1 and reply["token"]["token"] == token
    assert reply["key"]["token"] == master and reply["device"]["name"] == "ESP8266_TEST"

    # 5. the device's socket: activate (the seed's frame), identify
    board = FakeDevice(cloud, master)
    try:
        frame = {"nonce": 66, "path": "/v1/device/activate/", "method": "POST",
                 "body": {"encrypt_method": "PLAIN", "token": token, "bssid": "66:66:66:66:66:66", "rom_version": "V1.0"},
                 "meta": {"Authorization": f"token {master}"}}
        board.send(frame)
        activated = board.read()
        assert shape(activated) == dict(shape(SEED_ACTIVATE), nonce="int") and activated["nonce"] == 66
        board.send({"nonce": 66, "path": "/v1/device/identify/", "method": "GET", "meta": {"Authorization": f"token {master}"}})
        identified = board.read()
        assert identified["status"] == 200 and shape(identified["device"]) == shape(SEED_ACTIVATE["device"])

        # 6. an RPC to the device, from the phone's claim of the token
        owner = api.authorize(token)
        from cloud_fakes import in_background

        call = in_background(api.rpc, owner, "LED_ON")
        delivery = board.read()
        assert shape(delivery) == shape(SEED_DELIVERY)
        assert {k: delivery[k] for k in ("deliver_to_device", "get", "method", "path")} == {
            k: SEED_DELIVERY[k] for k in ("deliver_to_device", "get", "method", "path")}
        assert owner not in json.dumps(delivery)  # the caller's key never goes down the socket
        board.send({"status": 200, "nonce": delivery["nonce"], "deliver_to_device": True})
        assert call.result(10)[0] == 200
    finally:
        board.close()
