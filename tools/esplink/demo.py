"""`esplink demo`: the product on the virtual board, start to finish, as a transcript.

Boots a fresh board (38 KB heap), pairs it the way the phone app does, shows the LED
follow, reboots it to show the settings stick, and factory-resets it with a long press.
"""
import tempfile
import time
from pathlib import Path

from esplink import CommandError
from esplink.board import BoardProcess
from esplink.pair import pair_ap

WIFI = {"home-wifi": "correct horse 42"}


def say(text):
    print(f"  {text}", flush=True)


def demo(flash):
    print("esplink demo: a virtual ESP8266 on the 32-bit MicroPython VM (38 KB heap)\n", flush=True)
    board = BoardProcess(flash, WIFI).start()
    try:
        ap = board.expect(r"^ap: up (\S+)").group(1)
        board.expect(r"^led: pairing")
        say(f"1. fresh board boots into AP pairing: AP {ap}, HTTP on 127.0.0.1:{board.http_port}, LED fast blink")
        identity, _ = pair_ap(f"127.0.0.1:{board.http_port}", "home-wifi", "wrong password!")
        board.expect(r"^wifi: wrong password")
        board.expect(r"^mode: pair")
        board.expect(r"^led: failed")
        say(f"2. phone: GET /device -> deviceid {identity['deviceid']}; POST /ap with a wrong password")
        say("   board answers {\"error\":0}, tries, fails: LED double-blinks, back in AP mode, nothing saved")
        pair_ap(f"127.0.0.1:{board.http_port}", "home-wifi", WIFI["home-wifi"], server="127.0.0.1:8443")
        board.expect(r"^wifi: connected")
        board.expect(r"^led: connected")
        board.led_becomes(1)
        say("3. phone: POST /ap with the right password -> joined 'home-wifi', settings saved, LED on")
        board.stop()
        board = BoardProcess(flash, WIFI).start()
        board.expect(r"^mode: join")
        board.expect(r"^mode: online")
        say("4. power cycle: the board rejoins 'home-wifi' from its saved settings")
        board.press(hold=10.5)
        board.expect(r"^button: factory reset")
        board.expect(r"^led: pairing")
        say("5. button held 10 s: factory reset (identity kept), back in AP pairing")
        secrets = [p for p in (WIFI["home-wifi"], "wrong password!") if p in board.log()]
        if secrets:
            raise CommandError("a Wi-Fi password appeared in the board's output")
        print("\nboard's own event lines (last run):", flush=True)
        for line in board.lines:
            print(f"  | {line}")
        print("\ndemo: OK")
        return 0
    finally:
        board.stop()


def cmd_demo(args):
    if args.flash:
        return demo(Path(args.flash))
    with tempfile.TemporaryDirectory(prefix="esplink-demo-") as tmp:
        return demo(Path(tmp) / "flash")


def register(subparsers):
    p = subparsers.add_parser("demo", help="run the pairing demo on a virtual board")
    p.add_argument("--flash", help="keep the board's flash here (default: a temporary directory)")
    p.set_defaults(func=cmd_demo)
