# What the cloud can ask of the device. An action is one small function:
#
#     @action("BEEP")
#     def beep(device, get):      # get: the delivery's "get" parameters
#         device.beep()           # raise ValueError("...") for a 400 reply
#
# It returns None or a datapoint dict to send back. Datastreams are the same with
# @stream("name"): fn(device, method, datapoint) -> datapoint.
from espcloud import proto

ACTIONS = {}
STREAMS = {}


def action(name):
    def register(fn):
        ACTIONS[name] = fn
        return fn

    return register


def stream(name):
    def register(fn):
        STREAMS[name] = fn
        return fn

    return register


def dispatch(device, msg):
    """(status, reply bytes) for one delivery; never raises for a bad delivery."""
    n = msg.get("nonce")
    if not isinstance(n, int):
        n = 0  # the cloud cannot match it anyway, but it deserves an answer
    try:
        return 200, proto.reply(n, 200, datapoint=_run(device, msg))
    except ValueError as e:
        return 400, proto.reply(n, 400, message=str(e))
    except Exception as e:  # a broken handler, or one the heap cannot hold, must not take the link down
        print("cloud: action failed:", repr(e))
        return 500, proto.reply(n, 500, message="action failed")


_STREAM_PREFIX = "/v1/datastreams/"
_STREAM_SUFFIX = "/datapoint/"


def _run(device, msg):
    path = msg.get("path")
    get = msg.get("get")
    if not isinstance(get, dict):
        get = {}
    if path == "/v1/device/rpc/":
        name = get.get("action")
        # a list or dict: a TypeError on CPython, a miss on MicroPython; a 400 on both
        fn = ACTIONS.get(name) if isinstance(name, str) else None
        if fn is None:
            raise ValueError("unknown action")
        return fn(device, get)
    if isinstance(path, str) and path.startswith(_STREAM_PREFIX) and path.endswith(_STREAM_SUFFIX):
        fn = STREAMS.get(path[len(_STREAM_PREFIX):-len(_STREAM_SUFFIX)])
        if fn is None:
            raise ValueError("unknown datastream")
        body = msg.get("body")
        point = body.get("datapoint") if isinstance(body, dict) else None
        return fn(device, msg.get("method"), point)
    raise ValueError("unknown path")


# Built in: the seed's LED example, a plug's on/off state, a remote reboot.


@action("LED_ON")
def led_on(device, get):
    device.set_plug(1)


@action("LED_OFF")
def led_off(device, get):
    device.set_plug(0)


@action("sys_reboot")
def sys_reboot(device, get):
    device.reboot_soon()


@stream("plug-status")
def plug_status(device, method, point):
    if method == "POST":
        x = point.get("x") if isinstance(point, dict) else None
        if type(x) is not int or not 0 <= x <= 1:
            raise ValueError("datapoint x must be 0 or 1")
        device.set_plug(x)
    elif method != "GET":
        raise ValueError("method must be GET or POST")
    return {"x": device.plug}
