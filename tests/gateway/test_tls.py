"""MQTT over TLS with a client certificate (mutual TLS) against a real mosquitto TLS
listener; certificates made for the test with the openssl command-line tool."""
from __future__ import annotations

import shutil
import subprocess

import pytest
from gwtest import gateway_config, meter_entries, sim_meters, start_modbus_tcp, wait_until

from askue.devservices.mosquitto import Mosquitto
from askue.devservices.ports import free_port
from askue.gateway.config import GatewayConfig
from askue.gateway.service import Gateway

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


def _openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=askue test CA", cwd=d)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=askue-{name}", cwd=d)
        (d / f"{name}.ext").write_text(ext + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)


async def test_gateway_publishes_over_mutual_tls(tmp_path, collector_factory):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    tls_port = free_port()
    broker = Mosquitto(tmp_path / "mqtt", extra_config=(
        f"listener {tls_port} 127.0.0.1\ncafile {pki}/ca.crt\ncertfile {pki}/server.crt\nkeyfile {pki}/server.key\n"
        "require_certificate true\nuse_identity_as_username true\n"))
    broker.start()
    sims = sim_meters(2)
    server, port = await start_modbus_tcp(sims)
    try:
        col = collector_factory(broker.host, broker.port, "gw-tls")  # the head-end side, plain listener
        cfg = GatewayConfig.model_validate(gateway_config(
            tmp_path, "gw-tls", tls_port,
            buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port}],
            meters=meter_entries(sims, "tcp1", {"register": 1, "interval": None, "events": None}),
            broker={"host": "127.0.0.1", "tls": {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "client.crt"),
                                                 "key_file": str(pki / "client.key")}}))
        gw = Gateway(cfg)
        await gw.start()
        try:
            await wait_until(lambda: len({v.meter_id for v in col.values()}) == 2, 20, "values over TLS")
            assert col.states()[0].online
        finally:
            await gw.stop()
    finally:
        server.close()
        broker.stop()
