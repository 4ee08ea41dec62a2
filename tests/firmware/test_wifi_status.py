# wifi.outcome: both ports' WLAN.status() codes folded into one set of outcomes.
# Runs under pytest and on the MicroPython VM (tests/firmware/vmrun.py).
import wifi


class ESP8266:
    STAT_IDLE = 0
    STAT_CONNECTING = 1
    STAT_WRONG_PASSWORD = 2
    STAT_NO_AP_FOUND = 3
    STAT_CONNECT_FAIL = 4
    STAT_GOT_IP = 5


class ESP32:
    STAT_IDLE = 1000
    STAT_CONNECTING = 1001
    STAT_GOT_IP = 1010
    STAT_BEACON_TIMEOUT = 200
    STAT_NO_AP_FOUND = 201
    STAT_WRONG_PASSWORD = 202
    STAT_ASSOC_FAIL = 203
    STAT_HANDSHAKE_TIMEOUT = 204


def test_esp8266_codes():
    got = [wifi.outcome(code, ESP8266) for code in range(6)]
    assert got == [None, None, wifi.WRONG_PASSWORD, wifi.NO_AP, wifi.FAILED, wifi.CONNECTED]


def test_esp32_codes():
    want = {
        1000: None,
        1001: None,
        1010: wifi.CONNECTED,
        200: wifi.FAILED,
        201: wifi.NO_AP,
        202: wifi.WRONG_PASSWORD,
        203: wifi.FAILED,
        204: wifi.FAILED,
        205: wifi.FAILED,  # a raw ESP-IDF reason with no STAT_ name
    }
    for code in want:
        assert wifi.outcome(code, ESP32) == want[code], code


def test_esp8266_codes_mean_nothing_special_on_esp32():
    for code in (1, 2, 3, 5):
        assert wifi.outcome(code, ESP32) == wifi.FAILED, code


def test_outcomes_are_distinct_and_only_still_trying_is_falsy():
    outcomes = [wifi.CONNECTED, wifi.WRONG_PASSWORD, wifi.NO_AP, wifi.FAILED, wifi.TIMEOUT]
    assert len(set(outcomes)) == 5
    assert all(outcomes)  # join() stops on any truthy outcome


def test_default_net_is_the_network_module():
    import network

    assert wifi.outcome(network.STAT_GOT_IP) == wifi.CONNECTED
    assert wifi.outcome(network.STAT_CONNECTING) is None
