"""A private, throwaway PostgreSQL server for the test suite and the benchmarks.

``ThrowawayPostgres`` runs initdb in a temp dir, starts the server on a free port of
127.0.0.1 and removes everything on ``stop()``. PostgreSQL refuses to run as root, and
sessions and CI run as root: then the cluster belongs to the ``postgres`` system user and
initdb/pg_ctl run through ``runuser -u postgres --``.

A server must not outlive its owner: ``stop()`` is registered with atexit, and a small
watchdog process stops the server if the owner dies without running atexit (SIGKILL, a CI
timeout). The watchdog waits for EOF on a pipe whose only writer is the owner.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

PG_USER = "postgres"
START_TIMEOUT_S = 30.0
_INSTALL_LOCK = Path(tempfile.gettempdir()) / "paycell-pg-install.lock"


class PostgresNotFoundError(RuntimeError):
    code = "postgres_not_found"


class PostgresStartError(RuntimeError):
    code = "postgres_start_failed"


def _version_key(bin_dir: str) -> tuple[int, ...]:
    name = Path(bin_dir).parent.name  # /usr/lib/postgresql/<version>/bin
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


def _look_for_bin_dir() -> Path | None:
    on_path = shutil.which("initdb")
    if on_path:
        # Resolve symlinks: pg_ctl and pgbench sit beside the real initdb.
        bin_dir = Path(on_path).resolve().parent
        if (bin_dir / "pg_ctl").exists():
            return bin_dir
    candidates = [
        d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(f"{d}/initdb")
    ]
    if candidates:
        return Path(max(candidates, key=_version_key))
    return None


def _install_postgres() -> None:
    if os.geteuid() != 0:
        raise PostgresNotFoundError(
            "PostgreSQL (initdb, pg_ctl) not found; install Debian's postgresql package"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (
        ["apt-get", "update"],
        ["apt-get", "install", "-y", "-o", "DPkg::Lock::Timeout=300",
         "postgresql", "postgresql-contrib"],
    ):
        done = subprocess.run(
            cmd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise PostgresNotFoundError(
                f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                f"\n{done.stderr[-2000:]}"
            )


def find_bin_dir(install: bool = True) -> Path:
    """The directory holding initdb, pg_ctl and pgbench; installs PostgreSQL if missing."""
    found = _look_for_bin_dir()
    if found:
        return found
    if not install:
        raise PostgresNotFoundError("PostgreSQL (initdb, pg_ctl) not found")
    # Several test workers may get here at once: one installs, the others wait.
    with open(_INSTALL_LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        found = _look_for_bin_dir()
        if not found:
            _install_postgres()
            found = _look_for_bin_dir()
    if not found:
        raise PostgresNotFoundError("PostgreSQL installed but initdb still not found")
    return found


def _fast_parent_dir(min_free_bytes: int = 1 << 30) -> str | None:
    """/dev/shm if it is a roomy RAM disk: creating a database from a template writes a few
    hundred files, which costs ~0.2 s on a virtual disk and ~0.01 s in RAM."""
    shm = "/dev/shm"
    try:
        st = os.statvfs(shm)
    except OSError:
        return None
    roomy = st.f_bavail * st.f_frsize >= min_free_bytes
    return shm if roomy and os.access(shm, os.W_OK | os.X_OK) else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://``) in libpq's own form (``postgresql://``),
    for psycopg, psql and pgbench."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresAdmin:
    """Database-level administration of a server reached at an admin URL."""

    def __init__(self, url: str) -> None:
        self._admin_url = url

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the server's maintenance database."""
        return self._admin_url

    def url_for(self, dbname: str) -> str:
        return make_url(self.url).set(database=dbname).render_as_string(hide_password=False)

    def libpq_url(self, dbname: str | None = None) -> str:
        """The URL in libpq's own form (``postgresql://``), for psycopg, psql and pgbench."""
        return libpq_url(self.url_for(dbname) if dbname else self.url)

    def execute(self, statement: sql.Composed) -> None:
        with psycopg.connect(self.libpq_url(), autocommit=True) as conn:
            conn.execute(statement)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given); return its URL."""
        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        self.execute(stmt)
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, closing any connection still open to it."""
        self.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


class ThrowawayPostgres(PostgresAdmin):
    """A private PostgreSQL cluster in a temp dir, listening on a free port of 127.0.0.1.

    ``durable=False`` (tests) turns fsync, synchronous_commit and full_page_writes off and
    puts the cluster in /dev/shm when that has room; ``durable=True`` (benchmarks) keeps the
    server's durable defaults, on disk. ``parent_dir`` chooses where the temp dir goes.
    """

    def __init__(
        self, durable: bool = False, install: bool = True, parent_dir: str | None = None
    ) -> None:
        super().__init__("")
        self.durable = durable
        # A durable server measures the real disk; a throwaway one may live in RAM.
        self.parent_dir = parent_dir or (None if durable else _fast_parent_dir())
        self.bin_dir = find_bin_dir(install=install)
        self.port = 0
        self.base_dir: Path | None = None
        self._as_postgres = os.geteuid() == 0
        self._owner_pid = os.getpid()
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._lifeline: int | None = None

    @property
    def pgbench(self) -> Path:
        beside = self.bin_dir / "pgbench"
        if beside.exists():
            return beside
        return Path(shutil.which("pgbench") or beside)

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("ThrowawayPostgres is not started")
        return f"postgresql+psycopg://{PG_USER}@127.0.0.1:{self.port}/postgres"

    @property
    def data_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "sock"

    @property
    def log_file(self) -> Path:
        assert self.base_dir is not None
        return self.base_dir / "server.log"

    @property
    def running(self) -> bool:
        return self.base_dir is not None and self.port != 0

    @property
    def watchdog_pid(self) -> int | None:
        return self._watchdog.pid if self._watchdog else None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> Self:
        if self.running:
            return self
        self._owner_pid = os.getpid()
        self.base_dir = Path(tempfile.mkdtemp(prefix="paycell-pg-", dir=self.parent_dir))
        atexit.register(self.stop)
        try:
            self.socket_dir.mkdir()
            if self._as_postgres:
                pw = pwd.getpwnam(PG_USER)
                for path in (self.base_dir, self.socket_dir):
                    os.chown(path, pw.pw_uid, pw.pw_gid)
            self._run(
                "initdb", "-D", str(self.data_dir), "-A", "trust", "-U", PG_USER,
                "-E", "UTF8", "--locale=C", "--no-sync",
            )
            with open(self.data_dir / "postgresql.conf", "a") as conf:
                conf.write("\ninclude 'paycell.conf'\n")
            self._start_watchdog()
            self._start_on_free_port()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its files; safe to call twice."""
        if os.getpid() != self._owner_pid:
            return  # a forked child exiting must not stop its parent's server
        atexit.unregister(self.stop)
        self._stop_watchdog()
        if self.base_dir is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            for mode in ("fast", "immediate"):
                done = self._run(
                    "pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30", "stop",
                    check=False,
                )
                if done.returncode == 0:
                    break
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        self.port = 0

    def crash(self) -> None:
        """Stop the server the way a power cut would look to it: ``pg_ctl stop -m
        immediate`` (no checkpoint; the next start replays the WAL)."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")

    def restart(self) -> None:
        """Start the stopped server again on the same port and data directory."""
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                  "-w", "-t", str(int(START_TIMEOUT_S)), "start")
        self._wait_until_ready()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _command(self, tool: str, *args: str) -> list[str]:
        cmd = [str(self.bin_dir / tool), *args]
        return ["runuser", "-u", PG_USER, "--", *cmd] if self._as_postgres else cmd

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self._command(tool, *args),
            cwd=self.base_dir,  # the postgres user may not be allowed into our cwd
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and done.returncode != 0:
            raise PostgresStartError(
                f"{tool} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def _settings(self) -> dict[str, str]:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": "200",
        }
        if self.durable:
            # A production server's usual sizing, durability untouched (fsync,
            # synchronous_commit and full_page_writes stay on): memory for the journal's
            # indexes, and checkpoints far enough apart that each page's first write after
            # one (a full page image in the WAL) is rare. pgbench runs on the same settings.
            settings |= {"shared_buffers": "'1GB'", "max_wal_size": "'8GB'",
                         "checkpoint_timeout": "'15min'", "wal_buffers": "'64MB'"}
        else:
            settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
        return settings

    def _start_on_free_port(self, attempts: int = 5) -> None:
        # Another process may take the port between our pick and the server's bind: retry.
        for _ in range(attempts):
            self.port = free_port()
            conf = self.data_dir / "paycell.conf"
            conf.write_text("".join(f"{k} = {v}\n" for k, v in self._settings().items()))
            if self._as_postgres:
                shutil.chown(conf, PG_USER, PG_USER)
            self.log_file.unlink(missing_ok=True)
            done = self._run(
                "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file),
                "-w", "-t", str(int(START_TIMEOUT_S)), "start",
                check=False,
            )
            if done.returncode == 0:
                return
            log = self._log_tail()
            if "Address already in use" not in log:
                raise PostgresStartError(
                    f"pg_ctl start failed ({done.returncode}):\n{done.stderr}\n{log}"
                )
        raise PostgresStartError(f"no free port after {attempts} attempts:\n{self._log_tail()}")

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.libpq_url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PostgresStartError(
                        f"server not ready after {START_TIMEOUT_S:.0f} s: {exc}\n"
                        f"{self._log_tail()}"
                    ) from exc
                time.sleep(0.1)

    def _log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"

    def _start_watchdog(self) -> None:
        stop = self._command("pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop")
        # `read` returns at EOF, when the last writer (this process) has gone.
        script = (
            f"read -r _line; {shlex.join(stop)} >/dev/null 2>&1;"
            f" rm -rf {shlex.quote(str(self.base_dir))}"
        )
        read_end, self._lifeline = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                ["sh", "-c", script],
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.base_dir,
                start_new_session=True,  # survives the Ctrl-C or SIGTERM sent to our group
            )
        finally:
            os.close(read_end)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self._lifeline is not None:
            with contextlib.suppress(OSError):
                os.close(self._lifeline)
            self._lifeline = None
