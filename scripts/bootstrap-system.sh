#!/usr/bin/env bash
# Installs the system packages askue's demo and tests need, when missing, and TimescaleDB
# when a source release is given (TIMESCALEDB_SOURCE=…/timescaledb-X.Y.Z.tar.gz) and the
# extension is not installed yet. Idempotent: does nothing when everything is there.
# Runs before any server starts: TimescaleDB's build tools can upgrade postgresql-N.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
# PDF exports embed DejaVu Sans (Cyrillic glyphs).
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || need+=(chromium)
              # browser tests read the TOTP enrolment QR code back with an independent decoder
              command -v zbarimg >/dev/null 2>&1 || need+=(zbar-tools) ;;
    node) command -v npm >/dev/null 2>&1 || need+=(nodejs npm) ;;
  esac
done

if [ ${#need[@]} -gt 0 ]; then
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
fi

# TimescaleDB, the production store: used by the tests and the demo wherever it is installed
# in the newest PostgreSQL (Timescale's apt package, or built here from a source release).
if [ -n "${TIMESCALEDB_SOURCE:-}" ]; then
  bash "$here/install-timescaledb.sh" "$TIMESCALEDB_SOURCE"
else
  pkglib=$(ls -d /usr/lib/postgresql/*/lib 2>/dev/null | sort -t/ -k5 -n | tail -1)
  if [ ! -f "$pkglib/timescaledb.so" ]; then
    echo "TimescaleDB: not installed and no TIMESCALEDB_SOURCE given: tests and demo run on plain PostgreSQL"
  fi
fi
