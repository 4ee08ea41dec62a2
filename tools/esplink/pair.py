"""`esplink pair ap | touch`: the phone's side of pairing, as a command. AP mode asks
the device who it is (GET /device), then hands it the Wi-Fi and cloud endpoint
(POST /ap): phone.py. Touch mode first broadcasts the Wi-Fi as ESP-Touch: touch.py."""
from esplink import secret
from esplink.phone import DEFAULT_DEVICE, new_token, pair_ap, port_number, report
from esplink.touch import cmd_touch


def cmd_ap(args):
    token = args.token or new_token()
    password = secret.value(args, "password")
    identity, _ = pair_ap(args.device, args.ssid, password, args.server, token, args.timeout)
    report(identity, args.ssid, None if args.token else token)
    return 0


def register(subparsers):
    pair = subparsers.add_parser("pair", help="pair a device, as the phone app does").add_subparsers(
        dest="pair_command", required=True)
    p = pair.add_parser("ap", help="AP mode: GET /device, then POST /ap")
    p.add_argument("--device", default=DEFAULT_DEVICE, metavar="HOST:PORT", help="the device's pairing server")
    p.add_argument("--ssid", required=True)
    secret.add_option(p, "--password", "ESPLINK_WIFI_PASSWORD", "the Wi-Fi password", "PASSWORD")
    p.add_argument("--server", metavar="HOST:PORT", help="cloud endpoint the device should use")
    p.add_argument("--token", help="activation token, 40 chars [0-9a-z] (default: a fresh random one,"
                   " printed)")
    p.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="how long to wait for each answer")
    p.set_defaults(func=cmd_ap)

    p = pair.add_parser("touch", help="touch mode: broadcast the Wi-Fi as ESP-Touch v1, wait for the "
                        "device's ack, then GET /device and POST /ap")
    p.add_argument("--ssid", required=True)
    secret.add_option(p, "--password", "ESPLINK_WIFI_PASSWORD", "the Wi-Fi password", "PASSWORD")
    p.add_argument("--bssid", metavar="MAC", help="the AP's BSSID, aa:bb:cc:dd:ee:ff "
                   "(default 00:00:00:00:00:00: unknown)")
    p.add_argument("--target", default="255.255.255.255:7001", metavar="HOST:PORT",
                   help="where the datagrams go (default 255.255.255.255:7001)")
    p.add_argument("--phone-ip", metavar="IP", help="the address the device acks to "
                   "(default this host's address on the route to the target)")
    p.add_argument("--ack-port", type=port_number, default=18266, metavar="N",
                   help="the UDP port the ack comes to (default 18266)")
    p.add_argument("--device-port", type=port_number, default=80, metavar="N",
                   help="the device's HTTP port (default 80)")
    p.add_argument("--server", metavar="HOST:PORT", help="cloud endpoint the device should use")
    p.add_argument("--token", help="activation token, 40 chars [0-9a-z] (default: a fresh random one,"
                   " printed)")
    p.add_argument("--timeout", type=float, default=45.0, metavar="SECONDS",
                   help="how long to send (default 45)")
    p.add_argument("--listen", type=float, default=15.0, metavar="SECONDS",
                   help="how long to wait for the ack after sending (default 15)")
    p.add_argument("--no-bssid", action="store_true",
                   help="leave the BSSID out of the broadcast, as older senders do")
    p.set_defaults(func=cmd_touch)
