"""Generated map tiles for the map tests (no tests here): small PNGs (a labelled
graticule) drawn here for any
z/x/y, served by a local HTTP tile server (as an internal tile server would be), written
as a {z}/{x}/{y}.png folder, or packed into an MBTiles file (TMS rows)."""
from __future__ import annotations

import io
import math
import sqlite3
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ATTRIBUTION = "Тестовая подложка askue"


def _lon(x: float, z: int) -> float:
    return x / (1 << z) * 360.0 - 180.0


def _lat(y: float, z: int) -> float:
    return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / (1 << z)))))


@lru_cache(maxsize=4096)
def tile_png(z: int, x: int, y: int) -> bytes:
    """A 256 px tile: a pale background, the graticule (meridians and parallels, labelled)
    at a step that suits the zoom, and its z/x/y in a corner."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (256, 256), (236, 239, 232))
    d = ImageDraw.Draw(img)
    step = 20 if z <= 2 else 10 if z <= 4 else 5 if z <= 6 else 1 if z <= 9 else 0.1
    west, east, north, south = _lon(x, z), _lon(x + 1, z), _lat(y, z), _lat(y + 1, z)
    k = math.ceil(west / step)
    while k * step < east:  # meridians
        px = (k * step - west) / (east - west) * 256
        d.line((px, 0, px, 255), fill=(196, 206, 214))
        d.text((px + 3, 240), f"{k * step:g}°", fill=(120, 132, 146))
        k += 1
    k = math.ceil(south / step)
    while k * step < north:  # parallels: Mercator y of the latitude within the tile
        lat = math.radians(k * step)
        merc = (1 - math.log(math.tan(lat) + 1 / math.cos(lat)) / math.pi) / 2 * (1 << z)
        py = (merc - y) * 256
        d.line((0, py, 255, py), fill=(196, 206, 214))
        d.text((3, py + 2), f"{k * step:g}°", fill=(120, 132, 146))
        k += 1
    d.text((200, 4), f"{z}/{x}/{y}", fill=(170, 178, 188))
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


class TileServer:
    """http://127.0.0.1:<port>/{z}/{x}/{y}.png from `tile_png`, recording what was asked."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append(self.path)
                parts = self.path.strip("/").removesuffix(".png").split("/")
                if len(parts) != 3 or not all(p.isdigit() for p in parts):
                    self.send_error(404)
                    return
                body = tile_png(*map(int, parts))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Access-Control-Allow-Origin", "*")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}" + "/{z}/{x}/{y}.png"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> TileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def _all(max_zoom: int):
    for z in range(max_zoom + 1):
        for x in range(1 << z):
            for y in range(1 << z):
                yield z, x, y


def write_tile_dir(root: Path, max_zoom: int = 4) -> Path:
    for z, x, y in _all(max_zoom):
        f = root / str(z) / str(x) / f"{y}.png"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(tile_png(z, x, y))
    return root


def write_mbtiles(path: Path, max_zoom: int = 4, fmt: str = "png") -> Path:
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE metadata (name text, value text)")
        c.execute("CREATE TABLE tiles (zoom_level integer, tile_column integer, tile_row integer, tile_data blob)")
        c.executemany("INSERT INTO metadata VALUES (?, ?)", [
            ("name", "askue test"), ("format", fmt), ("minzoom", "0"), ("maxzoom", str(max_zoom)),
            ("attribution", ATTRIBUTION)])
        c.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                      [(z, x, (1 << z) - 1 - y, tile_png(z, x, y)) for z, x, y in _all(max_zoom)])
    return path
