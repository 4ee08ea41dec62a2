"""A client for the cloud's REST API, as a phone app would use it."""
from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote, urlencode

from esplink import CommandError
from esplink.cloud import certs


class CloudError(CommandError):
    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


class Client:
    def __init__(self, api_host, api_port, ca_file, timeout=30.0):
        self.host, self.port, self.timeout = api_host, api_port, timeout
        self.ctx = certs.client_context(ca_file)  # verifies chain and host name

    def request(self, method, path, key=None, body=None) -> tuple[int, dict]:
        """(HTTP status, JSON reply). CloudError if the cloud is unreachable or not JSON."""
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Authorization"] = f"token {key}"
        data = None if body is None else json.dumps(body).encode()
        conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout, context=self.ctx)
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
        except (socket.timeout, TimeoutError):
            raise CloudError(f"cloud {self.host}:{self.port} did not answer within {self.timeout:g} s")
        except (OSError, http.client.HTTPException) as e:
            raise CloudError(f"cannot reach the cloud at {self.host}:{self.port}: "
                             f"{e.__class__.__name__}: {e}")
        finally:
            conn.close()
        try:
            reply = json.loads(raw)
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            raise CloudError(f"{method} {path}: HTTP {resp.status}, not a JSON object", resp.status)
        return resp.status, reply

    def ping(self) -> tuple[int, dict]:
        return self.request("GET", "/v1/ping/")

    def authorize(self, token) -> str:
        """Claim the device activated with `token`; its new owner key."""
        status, reply = self.request("POST", "/v1/key/authorize/", body={"token": token})
        if status != 200:
            raise CloudError(f"authorize refused: HTTP {status} {reply.get('message', '')}".rstrip(), status)
        return reply["key"]["token"]

    def rpc(self, key, action, method="GET", **params) -> tuple[int, dict]:
        query = urlencode({"deliver_to_device": "true", "action": action, **params})
        return self.request(method, f"/v1/device/rpc/?{query}", key)

    def datapoint(self, key, stream, datapoint=None, deliver=True) -> tuple[int, dict]:
        """Write `datapoint` (or read, when None) on the device, or in the cloud's store
        when deliver is False."""
        path = f"/v1/datastreams/{quote(stream, safe='')}/datapoint/"
        if deliver:
            path += "?deliver_to_device=true"
        if datapoint is None:
            return self.request("GET", path, key)
        return self.request("POST", path, key, {"datapoint": datapoint})
