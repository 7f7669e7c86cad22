#!/usr/bin/env bash
# Fetch the map's JavaScript (Leaflet 1.9.4 + Leaflet.markercluster 1.5.3) with npm
# into headend/web/static/vendor/ (git-ignored). The head-end serves these files
# itself, so operator pages work on a closed network. Run once at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=headend/web/static/vendor
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
command -v npm >/dev/null || { echo "npm is missing: apt-get install -y nodejs npm" >&2; exit 3; }
( cd "$TMP" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent leaflet@1.9.4 leaflet.markercluster@1.5.3 )
rm -rf "$DEST"
mkdir -p "$DEST/leaflet" "$DEST/markercluster"
cp -r "$TMP/node_modules/leaflet/dist/." "$DEST/leaflet/"
cp "$TMP/node_modules/leaflet.markercluster/dist/"{leaflet.markercluster.js,MarkerCluster.css} "$DEST/markercluster/"
cp "$TMP/node_modules/leaflet/LICENSE" "$DEST/leaflet/LICENSE"
cp "$TMP/node_modules/leaflet.markercluster/MIT-LICENCE.txt" "$DEST/markercluster/LICENSE" 2>/dev/null || true
echo "web assets in $DEST:"; ls "$DEST"/*
