#!/usr/bin/env bash
# Builds TimescaleDB from a source release (tarball or unpacked tree) and installs it into
# the newest PostgreSQL under /usr/lib/postgresql (the server askue's tests and demo start).
# For machines where Timescale's own apt repository (timescaledb-2-postgresql-N) is out of
# reach; production installs that package or runs the official image (docs/storage.md).
#
#   usage: install-timescaledb.sh SOURCE        (e.g. timescaledb-2.28.3.tar.gz)
#
# Idempotent: does nothing when this build of that version is installed already, or when
# the extension came from a Debian package. Needs root (apt-get for the build tools, and
# PostgreSQL's library directory). About 2 minutes on 2 cores.
#
# Run it before starting any server: postgresql-server-dev-N can pull a newer postgresql-N
# minor release, and a server started from the old binaries then fails to load plpgsql.so.
set -euo pipefail

src=${1:?usage: install-timescaledb.sh SOURCE (a TimescaleDB source tarball or directory)}
[ -e "$src" ] || { echo "TimescaleDB source $src does not exist" >&2; exit 1; }
src=$(cd "$(dirname "$src")" && pwd)/$(basename "$src")

pg_config=$(ls /usr/lib/postgresql/*/bin/pg_config 2>/dev/null | sort -t/ -k5 -n | tail -1 || true)
[ -n "$pg_config" ] || { echo "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_config)" >&2; exit 1; }
major=$("$pg_config" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
libdir=$("$pg_config" --pkglibdir)
extdir=$("$pg_config" --sharedir)/extension

if [ -d "$src" ]; then
  config=$(cat "$src/version.config" 2>/dev/null || true)
else
  config=$(tar -xzOf "$src" --wildcards '*/version.config' 2>/dev/null || true)
fi
version=$(sed -nE 's/^version *= *([^ ]+)$/\1/p' <<<"$config")
[ -n "$version" ] || { echo "$src: no version in version.config; is this a TimescaleDB source release?" >&2; exit 1; }

# What this script changes in the upstream source (see below); part of the build's identity.
build_id="askue-1"
marker="$extdir/timescaledb.askue-build"
if dpkg -S "$libdir/timescaledb.so" >/dev/null 2>&1; then
  # Timescale's package owns the loader: never overwrite a packaged installation
  echo "TimescaleDB: installed from a Debian package in $libdir (left as it is)"; exit 0
fi
if [ -f "$libdir/timescaledb-$version.so" ]; then
  if [ "$(cat "$marker" 2>/dev/null)" = "$version $build_id" ]; then
    echo "TimescaleDB $version: installed (askue build) in $libdir"; exit 0
  fi
  echo ">> TimescaleDB $version in $libdir is not this script's build: rebuilding it"
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "building TimescaleDB needs root (apt-get and $libdir); run: sudo $0 $src" >&2
  exit 1
fi

need=()
command -v cmake >/dev/null || need+=(cmake)
command -v cc >/dev/null && command -v make >/dev/null || need+=(build-essential)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
if ! dpkg -s "postgresql-server-dev-$major" >/dev/null 2>&1; then
  # The headers of the very server release installed, when the archive still has them:
  # otherwise apt upgrades the server to match (start servers only after this).
  server=$(dpkg-query -W -f='${Version}' "postgresql-$major" 2>/dev/null || true)
  if [ -n "$server" ] && apt-cache madison "postgresql-server-dev-$major" 2>/dev/null | grep -qF " $server "; then
    need+=("postgresql-server-dev-$major=$server")
  else
    need+=("postgresql-server-dev-$major")
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo ">> installing TimescaleDB build tools: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$src" ]; then
  cp -a "$src" "$work/src"
else
  mkdir "$work/src"
  tar -xzf "$src" -C "$work/src" --strip-components=1
fi
cd "$work/src"

# Background jobs (policies) run in a portal TimescaleDB creates and never defines; PostgreSQL
# 15.20 refuses to drop a portal still in that state ("cannot drop portal "" while it is being
# set up"), so every policy run was reported failed after its work was done. Mark it done first.
job_c=tsl/src/bgw_policy/job.c
if ! grep -qF 'portal->status = PORTAL_DONE;' "$job_c"; then
  sed -i -E 's/^([[:space:]]*)PortalDrop\(portal, false\);/\1portal->status = PORTAL_DONE;\n&/' "$job_c"
  grep -qF 'portal->status = PORTAL_DONE;' "$job_c" \
    || echo "note: no PortalDrop(portal, false) in $job_c; building it unchanged" >&2
fi

echo ">> building TimescaleDB $version for PostgreSQL $major (about 2 minutes on 2 cores)"
./bootstrap -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DENABLE_DEBUG_UTILS=OFF \
  -DSEND_TELEMETRY_DEFAULT=NO -DPG_CONFIG="$pg_config" >"$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log" >&2; exit 1; }
make -C build -j"$(nproc)" >>"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
make -C build install DESTDIR="$work/stage" >>"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
# `install` writes a new file in place of the old: a running server keeps its mapped copy.
for f in "$work/stage$libdir"/timescaledb*.so; do install -m 0755 "$f" "$libdir/"; done
for f in "$work/stage$extdir"/timescaledb*; do install -m 0644 "$f" "$extdir/"; done
echo "$version $build_id" >"$marker"
echo "TimescaleDB $version installed in $libdir (restart servers to load it)"
