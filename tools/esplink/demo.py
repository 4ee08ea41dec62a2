"""`esplink demo`: the product on the virtual board, start to finish, as a transcript.

Starts the local cloud, creates a device, boots a fresh virtual ESP8266 (38 KB heap)
holding the device key and the cloud's CA, pairs it the way the phone app does, and
once it has activated and identified over verified TLS, claims it with the pairing
token and switches its LED through the cloud's REST API.

Run again on the same --dir, it keeps the cloud (its CA, accounts, earlier devices) and
boots a fresh board: the board's flash is erased as `tools/flash.sh --erase` would, and the
new device takes the next free name (desk-lamp, desk-lamp-2, ...).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from esplink import CommandError
from esplink.board.process import BoardProcess
from esplink.cloud.client import Client
from esplink.phone import new_token

WIFI = {"home-wifi": "correct horse 42"}


def say(text):
    print(f"  {text}", flush=True)


def esplink(*args, env=None):
    done = subprocess.run([sys.executable, "-m", "esplink.cli", *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, **(env or {})))
    if done.returncode:
        raise CommandError(f"esplink {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def start_cloud(data):
    proc = subprocess.Popen([sys.executable, "-m", "esplink.cli", "cloud", "serve", "--data", str(data),
                             "--tls-port", "0", "--plain-port", "0", "--api-port", "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while not (data / "server.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise CommandError(f"the local cloud did not start: {proc.stderr.read().strip()}")
        time.sleep(0.1)
    return proc, json.loads((data / "server.json").read_text())


def free_name(data, base="desk-lamp"):
    taken = {line.split()[1] for line in esplink("cloud", "devices", "--data", str(data)).splitlines()[1:]}
    return next(name for name in [base] + [f"{base}-{n}" for n in range(2, len(taken) + 3)] if name not in taken)


def demo(workdir):
    print("esplink demo: a virtual ESP8266 (MicroPython VM, 38 KB heap) and the local ESP cloud\n", flush=True)
    data, flash = workdir / "cloud", workdir / "flash"
    shutil.rmtree(flash, ignore_errors=True)  # a fresh board each run: it boots into pairing
    cloud, ports = start_cloud(data)
    board = None
    try:
        say(f"1. cloud: device TLS :{ports['tls_port']}, REST https :{ports['api_port']}, its own CA {data / 'ca.der'}")
        name = free_name(data)
        created = esplink("cloud", "device", "create", "--name", name, "--data", str(data))
        key = created.split("master device key: ")[1].split()[0]
        say(f"2. esplink cloud device create -> {name!r}; its key goes into the board's settings (not shown)")
        board = BoardProcess(flash, WIFI, device_key=key, ca=data / "ca.der").start()
        ap = board.expect(r"^ap: up (\S+)").group(1)
        board.expect(r"^led: pairing")
        say(f"3. the board boots into AP pairing: AP {ap}, HTTP on 127.0.0.1:{board.http_port}, LED fast blink")
        token = new_token()
        out = esplink("pair", "ap", "--device", f"127.0.0.1:{board.http_port}", "--ssid", "home-wifi",
                      "--server", f"127.0.0.1:{ports['tls_port']}", "--token", token,
                      env={"ESPLINK_WIFI_PASSWORD": WIFI["home-wifi"]})  # not in argv: ps shows that to all
        deviceid = out.split("deviceid=")[1].split()[0]
        say(f"4. esplink pair ap: GET /device -> {deviceid}; POST /ap with Wi-Fi, cloud 127.0.0.1 and a fresh token")
        board.expect(r"^wifi: connected")
        board.expect(r"^board: reset")
        say("5. the board joins 'home-wifi', saves, and resets into its network world (pairing code unloaded)")
        board.expect(r"^cloud: connecting .* TLS", timeout=20)
        board.expect(r"^cloud: activated", timeout=20)
        board.expect(r"^cloud: identified")
        # the demo's board is an ESP8266: axTLS cannot verify a certificate (the ESP32 checks the CA)
        say("6. TLS to the cloud (the ESP8266 cannot verify the server; an ESP32 checks it against the CA):"
            " activated with the token, identified")
        client = Client(ports["host"], ports["api_port"], data / "ca.pem")
        owner = client.authorize(token)
        say(f"7. phone: POST /v1/key/authorize/ with the token -> an owner key for {name}")
        board.led_becomes(1)
        for action, lit in (("LED_OFF", 0), ("LED_ON", 1), ("LED_OFF", 0)):
            t0 = time.perf_counter()
            status, reply = client.rpc(owner, action)
            ms = (time.perf_counter() - t0) * 1000
            if status != 200:
                raise CommandError(f"{action}: HTTP {status} {reply}")
            board.led_becomes(lit)
            say(f"8. GET /v1/device/rpc/?action={action} -> device replied {reply['status']} in {ms:.0f} ms;"
                f" virtual LED pin now {'lit' if lit else 'dark'}")
        listing = esplink("cloud", "devices", "--data", str(data)).strip().splitlines()
        say("9. esplink cloud devices:")
        for line in listing:
            say(f"     {line}")
        log = board.log()
        if WIFI["home-wifi"] in log or key in log or owner in log or token in log:
            raise CommandError("a secret appeared in the board's output")
        print("\nboard's own event lines:", flush=True)
        for line in board.lines:
            print(f"  | {line}")
        print("\ndemo: OK")
        return 0
    finally:
        if board:
            board.stop()
        cloud.terminate()
        cloud.wait(10)


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through demo()'s finally: the board and the cloud stop too


def cmd_demo(args):
    signal.signal(signal.SIGTERM, _stop)
    if args.dir:
        return demo(Path(args.dir))
    with tempfile.TemporaryDirectory(prefix="esplink-demo-") as tmp:
        return demo(Path(tmp))


def register(subparsers):
    p = subparsers.add_parser("demo", help="the cloud demo on a virtual board and the local cloud")
    p.add_argument("--dir", help="keep the board's flash and the cloud's data here (default: a temporary directory)")
    p.set_defaults(func=cmd_demo)
