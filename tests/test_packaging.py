"""The gateway must install and run with the `gateway` extra alone: no head-end
dependency may be imported by the gateway, the drivers or the contract."""
from __future__ import annotations

import subprocess
import sys
import textwrap

HEADEND_ONLY = ["fastapi", "starlette", "uvicorn", "psycopg", "psycopg_pool", "openpyxl", "jinja2", "argon2",
                "grafana_client", "multipart"]

PROBE = textwrap.dedent(
    """
    import importlib, pkgutil, sys
    BLOCKED = set(%r)

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked: head-end only)", name=name)
            return None

    sys.meta_path.insert(0, Block())
    imported = []
    for pkg in ("askue.contract", "askue.drivers", "askue.gateway"):
        mod = importlib.import_module(pkg)
        for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
            importlib.import_module(info.name)
            imported.append(info.name)
    from askue.cli import main
    try:
        main(["gateway", "--help"])
    except SystemExit as e:
        assert e.code == 0, e.code
    print(len(imported), "modules")
    """
) % (HEADEND_ONLY,)


def test_gateway_side_imports_without_headend_dependencies() -> None:
    r = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "usage: askue gateway" in r.stdout
    count = int(r.stdout.strip().splitlines()[-1].split()[0])
    assert count >= 5


def test_cli_help_and_exit_codes() -> None:
    r = subprocess.run([sys.executable, "-m", "askue.cli", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0
    for cmd in ("demo", "gateway", "headend", "simulate"):
        assert cmd in r.stdout
    r = subprocess.run([sys.executable, "-m", "askue.cli"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2  # no subcommand: usage error
    r = subprocess.run([sys.executable, "-m", "askue.cli", "simulate", "--config", "/nonexistent.yaml"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "nonexistent.yaml" in r.stderr
