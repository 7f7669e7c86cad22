"""The web map's base layer from the settings: OpenStreetMap's tiles by default (and the
page's Content-Security-Policy lets their images in), any {z}/{x}/{y} server, none at all,
or tiles the head-end serves itself from a folder or an MBTiles file (rows flipped as
TMS wants); a broken offline source is said on the page. Tiles are generated here."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from map_tiles import ATTRIBUTION, tile_png, write_mbtiles, write_tile_dir
from test_web_fixtures import build
from test_web_pages import W, login

from askue.headend.api.app import create_app
from askue.headend.config import ConfigError, Settings, load_settings


@pytest.fixture(scope="module")
def db(pg_cluster, pg_template, tmp_path_factory):
    name = "map_tiles_shared"
    dsn = pg_cluster.create_database(name, template=pg_template)
    try:
        build(dsn, tmp_path_factory.mktemp("map"))
        yield dsn
    finally:
        pg_cluster.drop_database(name)


def map_page(dsn: str, **settings) -> tuple[TestClient, object, dict]:
    client = TestClient(create_app(Settings(dsn=dsn, **settings)))
    client.__enter__()
    login(client, "admin")
    r = client.get(W + "/map")
    assert r.status_code == 200
    cfg = json.loads(re.search(r'<script type="application/json" id="map-tiles">(.*?)</script>', r.text, re.S).group(1))
    return client, r, cfg


def test_default_base_map_is_openstreetmap(db: str) -> None:
    client, r, cfg = map_page(db)
    try:
        assert cfg["url"] == "https://tile.openstreetmap.org/{z}/{x}/{y}.png" and cfg["maxZoom"] == 19
        assert "OpenStreetMap" in cfg["attribution"] and "openstreetmap.org/copyright" in cfg["attribution"]
        assert "img-src 'self' data: https://tile.openstreetmap.org;" in r.headers["content-security-policy"]
        assert 'data-tiles="online"' in r.text
        # other pages keep the strict policy
        assert "openstreetmap" not in client.get(W + "/events").headers["content-security-policy"]
    finally:
        client.__exit__(None, None, None)


def test_an_internal_tile_server_or_none(db: str) -> None:
    client, r, cfg = map_page(db, map_tile_url="https://{s}.tiles.uk.example/osm/{z}/{x}/{y}.png",
                              map_attribution="© ГИС УК", map_max_zoom=18)
    client.__exit__(None, None, None)
    assert cfg["url"].startswith("https://{s}.tiles.uk.example") and cfg["attribution"] == "© ГИС УК"
    assert "img-src 'self' data: https://*.tiles.uk.example;" in r.headers["content-security-policy"]
    client, r, cfg = map_page(db, map_tile_url="")
    client.__exit__(None, None, None)
    assert cfg["url"] == "" and 'data-tiles="none"' in r.text
    assert "img-src 'self' data:;" in r.headers["content-security-policy"]


def test_tiles_from_a_folder_are_served_by_the_headend(db: str, tmp_path: Path) -> None:
    root = write_tile_dir(tmp_path / "tiles", max_zoom=3)
    client, r, cfg = map_page(db, map_tiles_dir=str(root))
    try:
        assert cfg["url"] == W + "/tiles/{z}/{x}/{y}" and 'data-tiles="offline"' in r.text
        assert "img-src 'self' data:;" in r.headers["content-security-policy"]  # nothing from outside
        t = client.get(W + "/tiles/2/1/3")
        assert t.status_code == 200 and t.headers["content-type"] == "image/png" and t.content == tile_png(2, 1, 3)
        assert client.get(W + "/tiles/2/1/3.png").content == tile_png(2, 1, 3)
        for bad in ("/tiles/5/0/0", "/tiles/2/4/0", "/tiles/2/1/x", "/tiles/2/1/..%2F..%2Fetc"):
            assert client.get(W + bad).status_code == 404, bad
    finally:
        client.__exit__(None, None, None)


def test_tiles_from_an_mbtiles_file(db: str, tmp_path: Path) -> None:
    mb = write_mbtiles(tmp_path / "region.mbtiles", max_zoom=3)
    client, r, cfg = map_page(db, map_mbtiles=str(mb), map_max_zoom=18)
    try:
        assert cfg["url"] == W + "/tiles/{z}/{x}/{y}" and cfg["attribution"] == ATTRIBUTION
        assert cfg["maxNativeZoom"] == 3 and cfg["maxZoom"] == 18
        for z, x, y in ((0, 0, 0), (3, 2, 5), (3, 7, 0)):  # XYZ rows, stored as TMS
            t = client.get(f"{W}/tiles/{z}/{x}/{y}")
            assert t.status_code == 200 and t.content == tile_png(z, x, y), (z, x, y)
        assert client.get(W + "/tiles/4/0/0").status_code == 404
    finally:
        client.__exit__(None, None, None)


def test_a_broken_offline_source_is_said_on_the_page(db: str, tmp_path: Path) -> None:
    vector = write_mbtiles(tmp_path / "vector.mbtiles", max_zoom=0, fmt="pbf")
    for settings, words in (({"map_mbtiles": str(vector)}, "pbf"),
                            ({"map_tiles_dir": str(tmp_path / "missing")}, "is not a folder"),
                            ({"map_mbtiles": str(tmp_path / "none.mbtiles")}, "does not exist")):
        client, r, cfg = map_page(db, **settings)
        client.__exit__(None, None, None)
        assert cfg["url"] == "" and "Подложка карты недоступна" in r.text and words in r.text, settings


def test_map_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="one offline tile source"):
        load_settings(env={}, map_tiles_dir="/a", map_mbtiles="/b")
    with pytest.raises(ConfigError, match=r"\{z\}, \{x\} and \{y\}"):
        load_settings(env={"ASKUE_MAP_TILE_URL": "https://tiles.example/{z}/{x}.png"})
