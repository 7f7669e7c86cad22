"""The gateway imports and runs with the `gateway` extra alone: the real process, polling a
Modbus TCP simulator and publishing to mosquitto, with every head-end-only package blocked."""
from __future__ import annotations

import asyncio
import signal
import sys
import textwrap

from gwtest import gateway_config, meter_entries, sim_meters, start_modbus_tcp, wait_until, write_config

HEADEND_ONLY = ["fastapi", "starlette", "uvicorn", "psycopg", "psycopg_pool", "openpyxl", "jinja2", "argon2",
                "grafana_client", "multipart", "httpx", "aiomqtt"]

RUNNER = textwrap.dedent(
    """
    import sys
    BLOCKED = set(%r)

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: not in the gateway extra)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    from askue.cli import main
    sys.exit(main(["gateway", "--config", sys.argv[1]]))
    """
) % (HEADEND_ONLY,)


async def test_gateway_process_runs_without_headend_packages(tmp_path, mqtt_broker, collector_factory):
    sims = sim_meters(2)
    server, port = await start_modbus_tcp(sims)
    cfg = write_config(tmp_path / "gw.yaml", gateway_config(
        tmp_path, "gw-iso", mqtt_broker.port,
        buses=[{"id": "tcp1", "type": "tcp", "host": "127.0.0.1", "port": port}],
        meters=meter_entries(sims, "tcp1", {"register": 1, "interval": None, "events": None})))
    col = collector_factory(mqtt_broker.host, mqtt_broker.port, "gw-iso")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", RUNNER, str(cfg),
                                                stderr=asyncio.subprocess.PIPE)
    try:
        await wait_until(lambda: len({v.meter_id for v in col.values()}) == 2 or proc.returncode is not None, 30,
                         "values from the isolated gateway")
        assert proc.returncode is None, (await proc.stderr.read()).decode()[-2000:]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        server.close()
    assert col.states()[-1].online is False
