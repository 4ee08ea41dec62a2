# RPC dispatch: every delivery gets one reply with its nonce.
import json

from espcloud import actions


def dispatch(device, msg):
    status, reply = actions.dispatch(device, msg)
    assert json.loads(reply)["status"] == status
    return reply


class Device:
    def __init__(self):
        self.plug = 0
        self.reboots = 0

    def set_plug(self, x):
        self.plug = x

    def reboot_soon(self):
        self.reboots += 1


def rpc(action, nonce=912639262, **params):
    get = dict(params)
    if action is not None:
        get["action"] = action
    return {"deliver_to_device": True, "get": get, "meta": {"Authorization": "token k"},
            "method": "GET", "nonce": nonce, "path": "/v1/device/rpc/"}


def stream(method, point=None, nonce=101, name="plug-status"):
    msg = {"deliver_to_device": True, "get": {}, "meta": {}, "method": method, "nonce": nonce,
           "path": "/v1/datastreams/%s/datapoint/" % name}
    if point is not None:
        msg["body"] = {"datapoint": point}
    return msg


def test_led_on_and_off():
    d = Device()
    assert dispatch(d, rpc("LED_ON")) == b'{"status": 200, "nonce": 912639262, "deliver_to_device": true}\n'
    assert d.plug == 1
    assert dispatch(d, rpc("LED_OFF", nonce=5)) == b'{"status": 200, "nonce": 5, "deliver_to_device": true}\n'
    assert d.plug == 0


def test_unknown_action_and_path_get_400():
    d = Device()
    assert dispatch(d, rpc("SELF_DESTRUCT", nonce=9)) == (
        b'{"status": 400, "nonce": 9, "deliver_to_device": true, "message": "unknown action"}\n')
    assert json.loads(dispatch(d, rpc(None)))["status"] == 400
    bad = rpc("LED_ON")
    bad["path"] = "/v1/elsewhere/"
    assert json.loads(dispatch(d, bad)) == {"status": 400, "nonce": 912639262,
                                                     "deliver_to_device": True, "message": "unknown path"}
    bad = rpc("LED_ON")
    bad["get"] = "LED_ON"  # not an object: no action in it
    assert json.loads(dispatch(d, bad))["status"] == 400
    assert d.plug == 0


def test_plug_status_datastream():
    d = Device()
    assert dispatch(d, stream("POST", {"x": 1})) == (
        b'{"status": 200, "nonce": 101, "deliver_to_device": true, "datapoint": {"x": 1}}\n')
    assert d.plug == 1
    assert json.loads(dispatch(d, stream("GET", nonce=102))) == {
        "status": 200, "nonce": 102, "deliver_to_device": True, "datapoint": {"x": 1}}


def test_plug_status_refuses_bad_values_and_keeps_its_state():
    d = Device()
    d.plug = 1
    for point in ({"x": 2}, {"x": True}, {"x": "1"}, {"x": 1.0}, {}, None, [1]):
        msg = stream("POST", point)
        if point is None:
            msg["body"] = "x=1"
        reply = json.loads(dispatch(d, msg))
        assert reply["status"] == 400 and reply["nonce"] == 101, point
    assert json.loads(dispatch(d, stream("DELETE")))["status"] == 400
    assert json.loads(dispatch(d, stream("GET", name="temperature")))["message"] == "unknown datastream"
    assert d.plug == 1


def test_sys_reboot_answers_then_reboots():
    d = Device()
    assert json.loads(dispatch(d, rpc("sys_reboot"))) == {"status": 200, "nonce": 912639262,
                                                                  "deliver_to_device": True}
    assert d.reboots == 1


def test_adding_an_action_is_one_function():
    @actions.action("BEEP")
    def beep(device, get):
        if get.get("times") != "2":
            raise ValueError("times must be 2")
        return {"beeps": 2}

    try:
        d = Device()
        assert json.loads(dispatch(d, rpc("BEEP", times="2"))) == {
            "status": 200, "nonce": 912639262, "deliver_to_device": True, "datapoint": {"beeps": 2}}
        assert json.loads(dispatch(d, rpc("BEEP", times="3")))["message"] == "times must be 2"
    finally:
        del actions.ACTIONS["BEEP"]


def test_a_broken_handler_gets_500_not_a_crash():
    @actions.action("BROKEN")
    def broken(device, get):
        return {}["missing"]

    try:
        reply = json.loads(dispatch(Device(), rpc("BROKEN", nonce=3)))
        assert reply == {"status": 500, "nonce": 3, "deliver_to_device": True, "message": "action failed"}
    finally:
        del actions.ACTIONS["BROKEN"]


def test_a_delivery_without_a_usable_nonce_still_gets_an_answer():
    msg = rpc("LED_ON")
    msg["nonce"] = "x"
    assert json.loads(dispatch(Device(), msg))["nonce"] == 0


def test_an_unhashable_or_non_string_action_is_a_400_everywhere():
    # a list or dict was a TypeError (500) on CPython and a miss (400) on MicroPython
    d = Device()
    for action in ([1], {"a": 1}, 7, None, True):
        msg = rpc(None, nonce=44)
        msg["get"]["action"] = action
        assert dispatch(d, msg) == (
            b'{"status": 400, "nonce": 44, "deliver_to_device": true, "message": "unknown action"}\n'), action
    assert d.plug == 0


def test_a_handler_that_runs_out_of_memory_gets_500_not_a_reset():
    @actions.action("GREEDY")
    def greedy(device, get):
        raise MemoryError("memory allocation failed, allocating 4096 bytes")

    try:
        assert dispatch(Device(), rpc("GREEDY", nonce=8)) == (
            b'{"status": 500, "nonce": 8, "deliver_to_device": true, "message": "action failed"}\n')
    finally:
        del actions.ACTIONS["GREEDY"]
