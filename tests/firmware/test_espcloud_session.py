# The session state machine, driven with made-up times and the cloud's replies.
import json

from espcloud import proto, session
from espcloud.session import Session

KEY = "1cc05be71fb3f81bcba98acbd8fbff3a079461e5"
TOKEN = "0123456789abcdefghijklmnopqrstuvwxyz0123"
BSSID = "18:fe:34:a1:b2:c3"


def make(activated=False, now=0):
    return Session(KEY, TOKEN, BSSID, "v0.1.0t23701(a)", activated, now)


def sent(s):
    """Everything the session wants to send now, parsed."""
    out = []
    msg = s.take()
    while msg is not None:
        assert msg.endswith(b"\n") and msg.count(b"\n") == 1
        out.append(json.loads(msg))
        msg = s.take()
    return out


def only(msgs, path):
    return [m for m in msgs if m["path"] == path]


def activate_ok(nonce):
    return {"device": {"activate_status": 1, "id": 1}, "key": {"activate_status": 1},
            "nonce": nonce, "status": 200, "token": {"token": TOKEN}}


def test_activates_first_with_token_mac_version_and_key():
    s = make()
    (msg,) = sent(s)
    assert msg["path"] == "/v1/device/activate/" and msg["method"] == "POST"
    assert msg["body"] == {"encrypt_method": "PLAIN", "token": TOKEN, "bssid": BSSID,
                           "rom_version": "v0.1.0t23701(a)"}
    assert msg["meta"] == {"Authorization": "token " + KEY}


def test_activation_then_identify():
    s = make()
    (act,) = sent(s)
    assert s.receive(activate_ok(act["nonce"]), 100) == session.ACTIVATED
    assert s.activated
    (ident,) = sent(s)
    assert ident["path"] == "/v1/device/identify/" and ident["method"] == "GET"
    assert ident["nonce"] != act["nonce"]
    assert not s.identified
    assert s.receive({"device": {}, "nonce": ident["nonce"], "status": 200}, 200) == session.IDENTIFIED
    assert s.identified


def test_a_reply_with_the_wrong_nonce_is_ignored():
    s = make()
    (act,) = sent(s)
    assert s.receive(activate_ok(act["nonce"] ^ 1), 100) is None
    assert s.receive(activate_ok(None), 100) is None
    assert not s.activated and sent(s) == []
    assert s.receive(activate_ok(act["nonce"]), 200) == session.ACTIVATED


def test_activation_refused_is_retried_every_50_s():
    s = make()
    (act,) = sent(s)
    refused = {"device": {"activate_status": 0}, "nonce": act["nonce"], "status": 200}
    assert s.receive(refused, 1000) == session.ACTIVATE_FAILED
    assert s.tick(1000 + 49999) and sent(s) == []
    assert s.tick(1000 + 50000)
    (again,) = only(sent(s), "/v1/device/activate/")  # a ping may go out too: 50 s of silence
    assert again["nonce"] != act["nonce"]
    assert s.receive({"status": 400, "message": "bad token", "nonce": again["nonce"]}, 60000) == session.ACTIVATE_FAILED
    assert s.tick(110000)
    (third,) = only(sent(s), "/v1/device/activate/")
    assert s.receive(activate_ok(third["nonce"]), 111000) == session.ACTIVATED


def test_a_refused_key_is_rejected():
    s = make()
    (act,) = sent(s)
    assert s.receive({"status": 403, "message": "bad key", "nonce": act["nonce"]}, 10) == session.REJECTED


def test_identify_refused_forgets_activation():
    s = make(activated=True)
    (ident,) = sent(s)
    assert ident["path"] == "/v1/device/identify/"
    assert s.receive({"status": 403, "message": "device not activated", "nonce": ident["nonce"]}, 10) == session.REJECTED
    assert not s.activated  # the next connection activates again


def test_ping_after_50_s_of_silence_and_dead_after_another_50():
    s = make(activated=True, now=0)
    (ident,) = sent(s)
    s.receive({"nonce": ident["nonce"], "status": 200}, 1000)
    assert s.tick(50999) and sent(s) == []
    assert s.tick(51000)
    (ping,) = sent(s)
    assert ping["path"] == "/v1/ping/" and ping["method"] == "POST"
    assert s.tick(100999) and sent(s) == []
    assert not s.tick(101000)  # nothing since the ping: the link is dead


def test_a_ping_reply_keeps_the_link_alive():
    s = make(activated=True, now=0)
    (ident,) = sent(s)
    s.receive({"nonce": ident["nonce"], "status": 200}, 0)
    assert s.tick(50000)
    (ping,) = sent(s)
    s.receive({"message": "ping success", "nonce": ping["nonce"], "status": 200, "epoch": 1}, 50100)
    assert s.tick(100000) and sent(s) == []
    assert s.tick(100100)
    assert len(sent(s)) == 1  # the next ping, not a dead link


def test_a_login_whose_answer_was_lost_ends_the_link():
    # the identify reply dropped (bad or too big for the heap): answered pings would
    # otherwise keep a link up that never logs in
    s = make(activated=True, now=0)
    sent(s)
    assert s.tick(49999)
    s.receive({"message": "ping success", "nonce": 1, "status": 200}, 49000)
    assert not s.tick(50000)
    s = make(activated=False, now=0)
    (act,) = sent(s)
    s.receive({"message": "ping success", "nonce": act["nonce"] ^ 1, "status": 200}, 30000)
    assert s.tick(49999) and not s.tick(50000)


def test_ticks_wrap_around():
    # time.ticks_ms() wraps; ticks_diff() must be what decides, not raw subtraction
    if session.ticks_diff(1, 2) == -1 and session.ticks_diff(0, (1 << 29)) > 0:
        s = make(activated=True, now=(1 << 30) - 10)
        sent(s)
        assert s.tick(5) and sent(s) == []


def test_replaced_login():
    s = make(activated=True)
    sent(s)
    bye = {"message": "byebye, close by other peer login with same master key", "status": 200}
    assert s.receive(bye, 10) == session.REPLACED


def test_deliveries():
    s = make(activated=True)
    (ident,) = sent(s)
    s.receive({"nonce": ident["nonce"], "status": 200}, 10)
    rpc = {"deliver_to_device": True, "get": {"action": "LED_ON"}, "meta": {"Authorization": "token x"},
           "method": "GET", "nonce": 912639262, "path": "/v1/device/rpc/"}
    assert s.receive(rpc, 20) == session.DELIVERY
    # the device's own reply shape coming back is not a delivery
    assert s.receive({"status": 200, "nonce": 1, "deliver_to_device": True}, 30) is None


# Liveness, as the link drives it: whatever wakes it (bytes or the 1 s read timeout),
# the bytes go into Frames, complete frames to the session, answers to dropped frames
# out, and then tick() runs.

def trickle(s, data, step, until):
    """One byte of `data` every `step` ms from 0 to `until`: when tick() said the link
    was dead (None if it never did), and the events of the frames the session got."""
    f = proto.Frames()
    got = []
    t = i = 0
    while t < until:
        if not s.tick(t):
            return t, got
        sent(s)
        t += step
        space = f.space()
        space[0] = data[i % len(data)]
        f.received(1)
        i += 1
        msg = f.next()
        while msg is not None:
            if type(msg) is dict:  # bytes: the answer to a dropped frame, sent, not life
                got.append(s.receive(msg, t))
            msg = f.next()
    return None, got


def identified():
    s = make(activated=True, now=0)
    (ident,) = sent(s)
    assert s.receive({"nonce": ident["nonce"], "status": 200}, 0) == session.IDENTIFIED
    return s


def test_a_junk_trickle_does_not_keep_a_dead_link_alive():
    # junk, half objects cut by their line, bad JSON with a nonce (answered, but no proof of life)
    junk = b'x\x00\xff{"half": \n{"nonce": 5, "bad": nope}\n\r\n[1]{{'
    dead_at, got = trickle(identified(), junk, 500, 300000)
    assert got == [] and dead_at == 100000  # ping at 50 s, dead 50 s later


def test_a_complete_frame_among_junk_does_keep_the_link_alive():
    pong = b'{"message": "ping success", "nonce": 1, "status": 200}\n'
    dead_at, got = trickle(identified(), pong + b"junk\n" * 20, 500, 300000)  # a frame every 78 s
    assert dead_at is None and got == [None] * 4  # at 28, 106, 184, 262 s
