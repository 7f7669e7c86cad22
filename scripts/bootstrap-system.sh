#!/usr/bin/env bash
# Installs the system packages askue's demo and tests need, when missing.
# Idempotent: does nothing when everything is there.
set -euo pipefail

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
# PDF exports embed DejaVu Sans (Cyrillic glyphs).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium) ;;
    node) command -v npm >/dev/null 2>&1 || need+=(nodejs npm) ;;
  esac
done

[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "askue needs these Debian packages: ${need[*]}" >&2
  echo "Install them as root:  sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo ">> installing system packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the distribution's own services on install; askue runs its own
# private instances, so stop those to keep their ports free.
if command -v systemctl >/dev/null 2>&1; then
  systemctl stop mosquitto postgresql >/dev/null 2>&1 || true
fi
service mosquitto stop >/dev/null 2>&1 || true
