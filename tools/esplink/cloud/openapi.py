"""The REST API described (OpenAPI 3.1), path by path: what each takes and answers.
web.py serves it at /v1/openapi.json; a test checks that every route is here."""
from __future__ import annotations

_KEY = {"type": "object", "description": "a key: its `token` goes in `Authorization: token <token>`"}
_DEVICE = {"type": "object", "description": "a device, as the seed's activation reply shows it"}
_ERROR = {"type": "object", "properties": {"status": {"type": "integer"}, "message": {"type": "string"}}}


def _obj(**props):
    return {"type": "object", "properties": props, "required": list(props)}


_STR = {"type": "string"}
_LOGIN = _obj(email=_STR, password=_STR)
_DEVICE_ID = {"name": "device_id", "in": "query", "required": False, "schema": {"type": "integer"},
              "description": "with a user key: which of the account's (or shared) devices"}

# (method, path) -> (summary, auth, request body schema or None, reply schema, extra parameters)
PATHS = {
    ("GET", "/v1/ping/"): ("Liveness: the cloud's clock", None, None, _obj(epoch={"type": "integer"}), []),
    ("POST", "/v1/user/join/"): ("Create an account (email, password of 8+ characters)", None, _LOGIN,
                                 _obj(user={"type": "object"}, key=_KEY), []),
    ("POST", "/v1/user/login/"): ("Log in: the account and its user key (rate-limited)", None, _LOGIN,
                                  _obj(user={"type": "object"}, key=_KEY), []),
    ("POST", "/v1/keys/"): ("The seed's step 2: email, password, scope \"user\" -> the user key (scope 1)", None,
                            _obj(email=_STR, password=_STR, scope={"const": "user"}),
                            _obj(keys={"type": "array", "items": _KEY}), []),
    ("POST", "/v1/key/authorize/"): ("Claim the device activated with a token (into the caller's account with a"
                                     " user key); its owner key", "optional user key", _obj(token=_STR),
                                     _obj(key=_KEY, device=_DEVICE), []),
    ("GET", "/v1/openapi.json"): ("This document", None, None, {"type": "object"}, []),
    ("GET", "/v1/cloud/"): ("Where devices connect (TLS and plain ports on this host) and where the CA is", None,
                            None, _obj(cloud={"type": "object"}), []),
    ("GET", "/ca.der"): ("The cloud's CA certificate, DER (for flash.sh --ca and boards)", None, None,
                         {"type": "string", "contentMediaType": "application/x-x509-ca-cert"}, []),
    ("GET", "/ca.pem"): ("The cloud's CA certificate, PEM", None, None,
                         {"type": "string", "contentMediaType": "application/x-pem-file"}, []),
    ("GET", "/v1/user/devices/"): ("The account's devices (owned and shared), online state and last seen",
                                   "user key", None, _obj(devices={"type": "array", "items": _DEVICE}), []),
    ("POST", "/v1/user/devices/"): ("Create a device in the account: its master key (shown once), product and"
                                    " secrets", "user key", _obj(name=_STR),
                                    _obj(device=_DEVICE, key=_KEY, product={"type": "object"}), []),
    ("POST", "/v1/key/share/"): ("Give another account access to a device", "user key (the owner's)",
                                 _obj(device_id={"type": "integer"}, email=_STR), _obj(status={"type": "integer"}), []),
    ("GET", "/v1/qr/"): ("A QR code (SVG) of `text`, for the console's pairing link", "user key", None,
                         {"type": "string", "contentMediaType": "image/svg+xml"},
                         [{"name": "text", "in": "query", "required": True, "schema": _STR}]),
    ("GET", "/v1/device/"): ("A device's details", "device key, or user key + device_id", None,
                             _obj(device=_DEVICE), [_DEVICE_ID]),
    ("PUT", "/v1/device/"): ("Rename a device", "device key, or user key + device_id", _obj(name=_STR),
                             _obj(device=_DEVICE), [_DEVICE_ID]),
    ("DELETE", "/v1/device/"): ("Delete a device, its keys and datapoints", "owner key, or the owner's user key"
                                " + device_id", None, _obj(status={"type": "integer"}), [_DEVICE_ID]),
    ("POST", "/v1/device/"): ("The app's spelling of PUT and DELETE: ?method=PUT|DELETE", "as PUT/DELETE",
                              _obj(name=_STR), _obj(device=_DEVICE),
                              [_DEVICE_ID, {"name": "method", "in": "query", "required": True,
                                            "schema": {"enum": ["PUT", "DELETE"]}}]),
    ("POST", "/v1/device/activate/"): ("Activate over HTTP (the seed's step 4): a 40-character [0-9a-z] token,"
                                       " each token once", "master device key",
                                       _obj(encrypt_method=_STR, bssid=_STR, token=_STR),
                                       _obj(device=_DEVICE, key=_KEY, token=_KEY), []),
    ("GET", "/v1/device/rpc/"): ("An RPC to the device: the query (action=..., more params) becomes its `get`;"
                                 " answers with the device's reply (503 offline, 504 no answer, 413 too large"
                                 " for the device)", "device key, or user key + device_id", None, {"type": "object"},
                                 [_DEVICE_ID, {"name": "action", "in": "query", "required": True, "schema": _STR}]),
    ("POST", "/v1/device/rpc/"): ("The same with a body", "device key, or user key + device_id",
                                  {"type": "object"}, {"type": "object"}, [_DEVICE_ID]),
    ("GET", "/v1/datastreams/"): ("The device's datastreams that hold datapoints: name, count, last time",
                                  "device key, or user key + device_id", None,
                                  _obj(datastreams={"type": "array"}), [_DEVICE_ID]),
    ("GET", "/v1/datastreams/{stream}/datapoint/"): ("The latest datapoint (stored), or the device's with"
                                                     " ?deliver_to_device=true", "device key, or user key +"
                                                     " device_id", None, _obj(datapoint={"type": "object"}),
                                                     [_DEVICE_ID]),
    ("POST", "/v1/datastreams/{stream}/datapoint/"): ("Store a datapoint, or write it to the device with"
                                                      " ?deliver_to_device=true (the device's answer is stored)",
                                                      "device key, or user key + device_id",
                                                      _obj(datapoint={"type": "object"}),
                                                      _obj(datapoint={"type": "object"}), [_DEVICE_ID]),
    ("GET", "/v1/datastreams/{stream}/datapoints/"): ("The stream's history, oldest first, each with its time"
                                                      " (\"at\", UTC)", "device key, or user key + device_id", None,
                                                      _obj(datapoints={"type": "array"}),
                                                      [_DEVICE_ID, {"name": "limit", "in": "query",
                                                                    "schema": {"type": "integer", "maximum": 1000}}]),
}


def canonical(path: str) -> str:
    """aiohttp's pattern ({stream:regex}) as OpenAPI writes it ({stream})."""
    out, depth, name = "", 0, ""
    for c in path:
        if c == "{":
            depth += 1
            if depth == 1:
                name = ""
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                out += "{" + name.split(":")[0] + "}"
                continue
        if depth:
            name += c
        else:
            out += c
    return out


def spec(routes) -> dict:
    paths = {}
    for method, path, _ in routes:
        path = canonical(path)
        summary, auth, body, reply, params = PATHS[(method, path)]
        op = {"summary": summary,
              "responses": {"200": {"description": "done", "content": {"application/json": {"schema": reply}}},
                            "4XX": {"description": "refused", "content": {"application/json": {"schema": _ERROR}}}}}
        if "{stream}" in path:
            params = params + [{"name": "stream", "in": "path", "required": True, "schema": _STR}]
        if params:
            op["parameters"] = params
        if auth:
            op["description"] = f"Authorization: token <{auth}>"
            op["security"] = [{"token": []}]
        if body is not None:
            op["requestBody"] = {"description": "JSON, whatever the Content-Type says (curl -d sends a form type)",
                                 "content": {"application/json": {"schema": body}}}
        paths.setdefault(path, {})[method.lower()] = op
    return {"openapi": "3.1.0",
            "info": {"title": "esplink local ESP cloud", "version": "2",
                     "description": "The REST side of the ESP cloud (iot.espressif.cn), as a local server."},
            "components": {"securitySchemes": {"token": {"type": "apiKey", "in": "header", "name": "Authorization",
                                                         "description": "token <key>"}}},
            "paths": paths}
