"""`esplink board run` boots a virtual board; `esplink board press` presses its button."""
import os
import re
import signal
import sys
from pathlib import Path

from esplink import CommandError, secret, vm
from esplink.board import deploy, process


WIFI_ENV = "ESPLINK_BOARD_WIFI"  # SSID=PASSWORD lines: the access points, off the command line


def _parse_wifi(items):
    wifi = {}
    for item in items:
        ssid, sep, password = item.partition("=")
        if not sep or not ssid:
            raise CommandError(f"--wifi takes SSID=PASSWORD, got {ssid!r}...")  # never the password
        wifi[ssid] = password
    return wifi


def _wifi_lines(args):
    lines = list(args.wifi or ())
    if args.wifi_file:
        try:
            lines += Path(args.wifi_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeError) as e:
            raise CommandError(f"cannot read --wifi-file {args.wifi_file}: {e.__class__.__name__}") from None
    lines += os.environ.get(WIFI_ENV, "").splitlines()
    return [line for line in lines if line.strip()]


def _parse_scan(items):
    scan = []
    for item in items or ():
        ssid, sep, rssi = item.rpartition(":")
        if not sep or not ssid or not re.fullmatch(r"-?\d+", rssi):
            raise CommandError(f"--scan takes SSID:RSSI (e.g. home:-55), got {item!r}")
        scan.append((ssid, int(rssi)))
    return scan


def cmd_run(args):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    options = deploy.Options(
        chip=args.chip, wifi=_parse_wifi(_wifi_lines(args)), hosts=dict(deploy.parse_host(h) for h in args.host or ()),
        dns_delay_ms=args.dns_delay, http_port=args.http_port, touch_port=args.touch_port, ack_port=args.ack_port,
        ntp_port=args.ntp_port, dns_port=args.dns_port, scan=_parse_scan(args.scan), heap=args.heap,
        heap_probe=args.heap_probe, prelude=args.prelude)
    deploy.heap_bytes(options.heap)  # a bad size fails before anything is written
    # the flash holds the Wi-Fi password and the device key: the board's files are its
    # user's alone, as a chip's flash is its owner's
    os.umask(0o077)
    flash_dir = Path(args.flash)
    flash_dir.mkdir(parents=True, exist_ok=True)
    flash_dir.chmod(0o700)
    deploy.flash(flash_dir)
    deploy.provision(flash_dir, secret.value(args, "device_key"), args.ca, args.plain)
    deploy.install_standins(flash_dir)
    o = options
    print(f"board: {o.chip} flash={flash_dir} http=127.0.0.1:{o.http_port} touch=127.0.0.1:{o.touch_port} "
          f"ack->127.0.0.1:{o.ack_port} ntp->127.0.0.1:{o.ntp_port} dns=127.0.0.1:{o.dns_port} heap={o.heap}",
          flush=True)
    return process.boot_loop(flash_dir, options)


def cmd_press(args):
    state = process.press(args.flash, args.hold)
    print(f"pressed for {args.hold:g} s; led {'on' if state['led'] else 'off'}")
    return 0


def register(subparsers):
    board = subparsers.add_parser("board", help="the virtual board").add_subparsers(dest="board_command", required=True)
    p = board.add_parser("run", help="boot the firmware on the MicroPython VM and print its events")
    p.add_argument("--flash", required=True, help="the board's flash directory (kept across runs)")
    p.add_argument("--chip", choices=sorted(deploy.WIRING), default="esp8266",
                   help="the chip the board imitates, limits included (default: %(default)s)")
    p.add_argument("--heap", default=vm.HEAP_DEFAULT,
                   help="the firmware's heap (default: the ESP8266's %(default)s; the VM adds the stand-ins' own)")
    p.add_argument("--wifi", action="append", metavar="SSID=PASSWORD",
                   help=f"a virtual access point (repeatable); better as lines in ${WIFI_ENV} or --wifi-file"
                        " (other users can read command lines)")
    p.add_argument("--wifi-file", metavar="FILE", help="virtual access points, one SSID=PASSWORD a line")
    p.add_argument("--host", action="append", metavar="NAME[=127.0.0.1]",
                   help="a name the board's DNS resolves, always to 127.0.0.1 (repeatable); other names fail "
                        "as a DNS miss, other addresses are refused")
    p.add_argument("--dns-delay", type=int, default=0, metavar="MS",
                   help="each DNS lookup blocks the board this long, as a slow resolver does (default: %(default)s)")
    p.add_argument("--http-port", type=int, default=8080,
                   help="loopback port for the device's TCP 80 (default: %(default)s)")
    p.add_argument("--touch-port", type=int, default=7001,
                   help="loopback port for the device's UDP 7001, where ESP-Touch broadcasts arrive "
                        "(default: %(default)s)")
    p.add_argument("--ack-port", type=int, default=18266,
                   help="loopback port the touch ack goes to, the phone's UDP 18266 (default: %(default)s)")
    p.add_argument("--ntp-port", type=int, default=123,
                   help="loopback port the board's NTP queries go to (default: %(default)s)")
    p.add_argument("--dns-port", type=int, default=53,
                   help="loopback port for the device's UDP 53, its captive-portal DNS (default: %(default)s)")
    p.add_argument("--scan", action="append", metavar="SSID:RSSI",
                   help="a network a Wi-Fi scan finds, with its signal in dBm (repeatable); the --wifi "
                        "access points are found too, at -60 dBm unless listed here")
    secret.add_option(p, "--device-key", "ESPLINK_DEVICE_KEY", "the cloud's 40-hex device key (into settings.json)",
                      "KEY", required=False)
    p.add_argument("--ca", metavar="FILE", help="CA certificate the board verifies the cloud with")
    p.add_argument("--plain", action="store_true", help="talk to the cloud in plain TCP, not TLS")
    p.add_argument("--heap-probe", action="store_true",
                   help="sample the live heap every button poll (for bench/; slows the board)")
    p.add_argument("--prelude", metavar="FILE", help="a VM script to run before boot (for bench/)")
    p.set_defaults(func=cmd_run)
    p = board.add_parser("press", help="press the running board's button")
    p.add_argument("--flash", required=True, help="the running board's flash directory")
    p.add_argument("--hold", type=float, default=0.2, metavar="SECONDS", help="how long the button is held")
    p.set_defaults(func=cmd_press)
