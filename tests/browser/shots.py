"""Where browser tests put their screenshots (1366×768 pages, as operators and customers see
them): test-artifacts/screenshots/ on every run, and with ASKUE_UPDATE_SCREENSHOTS=1 also
docs/screenshots/, so the committed ones the docs show change only when refreshed on purpose."""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
DOCS = ROOT / "docs" / "screenshots"


def paths(name: str) -> list[Path]:
    """Where `<name>.png` goes this run (folders created)."""
    folders = [ARTIFACTS] + ([DOCS] if os.environ.get("ASKUE_UPDATE_SCREENSHOTS") == "1" else [])
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    return [folder / f"{name}.png" for folder in folders]


def shot(pg, name: str, *, full_page: bool = True) -> None:
    """Screenshot `pg` as `<name>.png`; `full_page=False` keeps to the viewport."""
    for path in paths(name):
        pg.screenshot(path=str(path), full_page=full_page)
