"""The web map's base layer: where its tiles come from (settings `map_*`), and the
offline tile sources the head-end serves itself — a folder of {z}/{x}/{y}.png files or an
MBTiles file (SQLite; rows in TMS order, so y is flipped).

`base_layer(settings)` says what the page's Leaflet loads: the tile URL, its attribution,
the zoom range and, for the Content-Security-Policy, the origin the images come from.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

TILE_PATH = "/tiles/{z}/{x}/{y}"  # under the web router's prefix
_EXTENSIONS = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"RIFF", "image/webp"))


class TileSourceError(ValueError):
    """An offline tile source that cannot be used; the message says why and what to do."""


@dataclass(frozen=True)
class BaseLayer:
    url: str  # Leaflet's {z}/{x}/{y} template; "" = no base layer
    attribution: str
    max_zoom: int
    max_native_zoom: int | None = None  # deepest level the tiles have (Leaflet scales beyond it)
    origin: str | None = None  # where tile images come from, when not the head-end itself
    offline: bool = False
    problem: str | None = None  # an offline source that does not work, said for the page


def _sniff(data: bytes) -> str | None:
    for magic, media in _MAGIC:
        if data.startswith(magic):
            return media
    return None


class TileDir:
    """{dir}/{z}/{x}/{y}.png (or .jpg, .webp)."""

    def __init__(self, path: str) -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise TileSourceError(f"map_tiles_dir {path!r} is not a folder; it holds {{z}}/{{x}}/{{y}}.png tiles")

    def get(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        for ext, media in _EXTENSIONS.items():
            f = self.root / str(z) / str(x) / f"{y}{ext}"
            if f.is_file():
                return f.read_bytes(), media
        return None

    def metadata(self) -> dict[str, str]:
        return {}


class MBTiles:
    """A raster MBTiles file (https://github.com/mapbox/mbtiles-spec), read-only."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise TileSourceError(f"map_mbtiles {path!r} does not exist")
        try:
            meta = self.metadata()
            with self._connect() as c:
                c.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles LIMIT 1").fetchall()
        except sqlite3.DatabaseError as e:
            raise TileSourceError(f"map_mbtiles {path!r} is not an MBTiles file ({e})") from None
        if meta.get("format", "png").lower() not in ("png", "jpg", "jpeg", "webp"):
            raise TileSourceError(f"map_mbtiles {path!r} holds {meta['format']} tiles; the web map shows raster "
                                  "tiles (png, jpg, webp) — export a raster MBTiles")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)

    def metadata(self) -> dict[str, str]:
        with self._connect() as c:
            return {str(k): str(v) for k, v in c.execute("SELECT name, value FROM metadata").fetchall()}

    def get(self, z: int, x: int, y: int) -> tuple[bytes, str] | None:
        with self._connect() as c:
            row = c.execute("SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                            (z, x, (1 << z) - 1 - y)).fetchone()
        if row is None:
            return None
        data = bytes(row[0])
        media = _sniff(data)
        return (data, media) if media else None


@lru_cache(maxsize=8)
def offline_source(tiles_dir: str | None, mbtiles: str | None) -> TileDir | MBTiles | None:
    if tiles_dir:
        return TileDir(tiles_dir)
    if mbtiles:
        return MBTiles(mbtiles)
    return None


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= 24 and 0 <= x < (1 << z) and 0 <= y < (1 << z)


def base_layer(settings, base: str) -> BaseLayer:
    """What the map page loads under its markers; `base` is the web router's path."""
    if settings.map_tiles_dir or settings.map_mbtiles:
        try:
            src = offline_source(settings.map_tiles_dir, settings.map_mbtiles)
        except TileSourceError as e:
            return BaseLayer("", "", settings.map_max_zoom, offline=True, problem=str(e))
        meta = src.metadata() if src else {}
        attribution = settings.map_attribution
        if attribution == type(settings).model_fields["map_attribution"].default and meta.get("attribution"):
            attribution = meta["attribution"]
        native = int(meta["maxzoom"]) if str(meta.get("maxzoom", "")).isdigit() else None
        return BaseLayer(base + TILE_PATH, attribution, settings.map_max_zoom, native, None, True)
    url = settings.map_tile_url
    if not url:
        return BaseLayer("", "", settings.map_max_zoom)
    parts = urlsplit(url.replace("{s}", "a"))
    origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    if origin and "{s}" in url:  # subdomains a, b, c
        origin = f"{parts.scheme}://*.{parts.netloc.split('.', 1)[1]}" if "." in parts.netloc else origin
    return BaseLayer(url, settings.map_attribution, settings.map_max_zoom, None, origin)
