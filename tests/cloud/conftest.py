import shutil

import pytest

from cloud_fakes import FakeDevice
from esplink.cloud import certs
from esplink.cloud.client import Client
from esplink.cloud.harness import start_in_thread
from esplink.cloud.store import Store

CERT_FILES = ("ca.pem", "ca.der", "ca.key", "server.pem", "server.key", "server-ec.pem", "server-ec.key")


@pytest.fixture(scope="session")
def cert_template(tmp_path_factory):
    # RSA key generation is the slow part: one CA and server cert for the session
    d = tmp_path_factory.mktemp("cloud-certs")
    certs.ensure(d)
    return d


@pytest.fixture
def data_dir(tmp_path, cert_template):
    d = tmp_path / "cloud"
    d.mkdir()
    for name in CERT_FILES:
        shutil.copy2(cert_template / name, d / name)
    return d


@pytest.fixture
def start_cloud(data_dir):
    running = []

    def start(data=None, **kw):
        kw.setdefault("rpc_timeout", 2.0)
        c = start_in_thread(data or data_dir, **kw)
        running.append(c)
        return c

    yield start
    for c in running:
        c.stop()


@pytest.fixture
def cloud(start_cloud):
    return start_cloud()


@pytest.fixture
def make_device(data_dir):
    def make(name=None):
        store = Store(data_dir)
        try:
            return store.create_device(name)
        finally:
            store.close()
    return make


@pytest.fixture
def connect(cloud):
    devices = []

    def connect(key, **kw):
        d = FakeDevice(cloud, key, **kw)
        devices.append(d)
        return d

    yield connect
    for d in devices:
        d.close()


@pytest.fixture
def api(cloud):
    return Client("127.0.0.1", cloud.api_port, cloud.ca_file, timeout=10)
