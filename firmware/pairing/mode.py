# The pairing world: AP mode (the phone joins our soft-AP and speaks the seed's
# exchange, or a person uses the captive portal) or touch mode (the phone broadcasts
# with ESP-Touch), a short press switching between them, until a phone hands over a
# network that works. The one place a pairing is committed: validated (by the
# handlers), joined, saved, then a reset into the network world. Imported only while
# pairing.
import hw
import settings
import wifi
from pairing import ap
from pairing.server import CLOSED, SWITCH


async def run(app):
    wifi.leave()
    notice = None  # the last attempt's outcome: the LED's failed pattern, the portal's notice
    in_touch = False
    while True:
        if in_touch:
            from pairing import touch  # only once asked for: AP mode's heap stays small

            got = await touch.run(app, commit)
        else:
            got = await ap.run(app, notice)
        if got == SWITCH:
            in_touch = not in_touch
            continue
        if got == CLOSED:
            print("pairing: window closed")
            hw.reset()  # back to the saved network
        if isinstance(got, dict):
            notice = await commit(app, got)  # resets when it works
        else:
            notice = got  # touch mode gave up, and why
        in_touch = False


async def commit(app, pairing, reset=True):
    """Join the paired network (unless on it already), save, reset; None when saved
    (with reset=False), else what went wrong (the old settings stand)."""
    s = app.s
    if not (wifi.connected() and pairing["ssid"] == s["ssid"] and pairing["password"] == s["password"]):
        result = await app.connect(pairing["ssid"], pairing["password"])
        if result != wifi.CONNECTED:
            return 'could not join "%s": %s' % (pairing["ssid"], result)
    settings.apply_pairing(s, pairing)
    settings.save(s)
    print("pairing: saved")
    if reset:
        hw.reset()  # into the network world
    return None
