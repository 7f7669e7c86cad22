"""A private PostgreSQL cluster in a directory (initdb + pg_ctl), on loopback.

PostgreSQL refuses to run as root, so as root the server runs as the
`postgres` system user (created by Debian's postgresql package).

Where the TimescaleDB extension is installed in that PostgreSQL, the server
starts with it preloaded (telemetry off), so a database migrated there takes
the timescale storage mode, as in production; `timescaledb=False` (or
ASKUE_STORAGE_MODE=plain in the environment) keeps it out.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from askue.devservices.ports import free_port


def pg_bindir() -> Path:
    env = os.environ.get("ASKUE_PG_BINDIR")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError(
        "PostgreSQL server binaries not found (looked in /usr/lib/postgresql/*/bin and PATH). "
        "Install them with: apt-get install -y postgresql   (or run `make deps` as root)"
    )


def _postgres_can_reach(path: Path) -> bool:
    """Whether the postgres user can enter every directory above `path`."""
    if os.geteuid() != 0:
        return True
    pw = pwd.getpwnam("postgres")
    for d in [path, *path.parents]:
        if not d.exists():
            continue
        st = d.stat()
        mode = st.st_mode
        ok = (mode & 0o001) or (st.st_uid == pw.pw_uid and mode & 0o100) or (st.st_gid == pw.pw_gid and mode & 0o010)
        if not ok:
            return False
    return True


def _reachable_root(root: Path) -> Path:
    """As root, a cluster under a directory the postgres user cannot enter (a clone in
    /root, say) lives in /var/lib/askue/ instead, with a symlink where it was asked for,
    so it is still kept between runs."""
    root = root.absolute()
    if root.is_symlink() or _postgres_can_reach(root.parent):
        return root.resolve()
    import hashlib

    target = Path("/var/lib/askue") / f"pg-{hashlib.sha1(str(root).encode()).hexdigest()[:12]}"
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o755)
    root.parent.mkdir(parents=True, exist_ok=True)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        root.symlink_to(target, target_is_directory=True)
    return root.resolve()


def _pkglibdir(bindir: Path) -> Path:
    pg_config = bindir / "pg_config"
    if pg_config.exists():
        r = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True, check=False)
        if r.returncode == 0 and r.stdout.strip():
            return Path(r.stdout.strip())
    return bindir.parent / "lib"  # Debian's layout: /usr/lib/postgresql/N/{bin,lib}


def timescaledb_installed(bindir: Path | None = None) -> bool:
    """Whether this PostgreSQL can preload TimescaleDB (its loader library is installed)."""
    return (_pkglibdir(bindir or pg_bindir()) / "timescaledb.so").exists()


# Server settings for TimescaleDB: loaded at start (CREATE EXTENSION needs it), no
# telemetry from test and demo servers, background workers enough for the launcher,
# one scheduler per database with the extension and the policies they run, and a new
# database's scheduler started within a second (the launcher polls every minute by
# default; test databases come and go in seconds).
TIMESCALEDB_SETTINGS = {
    "shared_preload_libraries": "timescaledb",
    "timescaledb.telemetry_level": "off",
    "timescaledb.max_background_workers": "16",
    "timescaledb.bgw_launcher_poll_time": "1000",
    "max_worker_processes": "24",
}


@dataclass
class PgCluster:
    root: Path
    port: int = 0
    host: str = "127.0.0.1"
    timescaledb: bool | None = None  # None: preload TimescaleDB where it is installed

    def __post_init__(self) -> None:
        self.root = _reachable_root(Path(self.root))
        self.datadir = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self.bindir = pg_bindir()
        if not self.port:
            self.port = free_port()
        if self.timescaledb is None:
            self.timescaledb = (os.environ.get("ASKUE_STORAGE_MODE") != "plain"
                                and timescaledb_installed(self.bindir))

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        kw: dict = {}
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            kw = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}
        return subprocess.run(args, check=check, capture_output=True, text=True, cwd="/", **kw)

    def _own(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    @property
    def initialised(self) -> bool:
        return (self.datadir / "PG_VERSION").exists()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._own(self.root)
        if not self.initialised:
            try:
                self._run(str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                          "-E", "UTF8", "--locale=C.UTF-8", "-N")
            except subprocess.CalledProcessError as e:
                raise RuntimeError(f"initdb failed in {self.datadir}:\n{e.stderr}") from e

    def start(self, fsync: bool = False) -> None:
        self.init()
        opts = f"-k {self.root} -p {self.port} -c listen_addresses={self.host}"
        if not fsync:
            opts += " -F"  # throwaway clusters: speed over durability
        if self.timescaledb:
            opts += "".join(f" -c {k}={v}" for k, v in TIMESCALEDB_SETTINGS.items())
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                      "-t", "60", "-o", opts, "start")
        except subprocess.CalledProcessError as e:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"PostgreSQL did not start on port {self.port}:\n{e.stdout}{e.stderr}\n{log}") from e

    def start_replica_of(self, primary: PgCluster) -> None:
        """A streaming replica of the running `primary`: a base backup taken over the
        replication protocol (pg_basebackup -R writes the standby settings), then started as
        a hot standby. initdb's default pg_hba lets the loopback replicate."""
        self.root.mkdir(parents=True, exist_ok=True)
        self._own(self.root)
        if not self.initialised:
            try:
                self._run(str(self.bindir / "pg_basebackup"), "-h", primary.host, "-p", str(primary.port),
                          "-U", "postgres", "-D", str(self.datadir), "-R", "-X", "stream", "-c", "fast")
            except subprocess.CalledProcessError as e:
                raise RuntimeError(f"pg_basebackup from port {primary.port} failed:\n{e.stderr}") from e
        self.start()

    def stop(self, mode: str = "fast") -> None:
        if self.initialised:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop", check=False)

    def kill(self) -> None:
        """Crash the server (SIGKILL to the postmaster), as a power loss would."""
        pidfile = self.datadir / "postmaster.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().split()[0])
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    @property
    def running(self) -> bool:
        r = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "status", check=False)
        return r.returncode == 0

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{dbname}"

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        r = self._run(str(self.bindir / "psql"), "-h", self.host, "-p", str(self.port), "-U", "postgres",
                      "-d", dbname, "-v", "ON_ERROR_STOP=1", "-Atc", sql, check=False)
        if r.returncode:
            raise RuntimeError(f"psql failed: {r.stderr.strip()}")
        return r.stdout

    def create_database(self, name: str, template: str | None = None) -> str:
        tpl = f' TEMPLATE "{template}"' if template else ""
        self.psql(f'CREATE DATABASE "{name}"{tpl}')
        return self.dsn(name)

    def freeze_template(self, name: str) -> None:
        """Make `name` a template nobody connects to any more, so CREATE DATABASE … TEMPLATE
        never finds it busy (TimescaleDB's scheduler keeps a session in every database with
        the extension, except templates)."""
        self.psql(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        self.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def has_database(self, name: str) -> bool:
        return self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip() == "1"
