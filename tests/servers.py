"""Real servers for integration tests: Redis, PostgreSQL and arbitrary processes.

Every server here is a child process of the test run, so we know its PID and stop it by that
PID (never by name). Every wait is bounded and, on timeout, raises `ServerError` with the tail
of the process's log so a failing CI run says why.

Typical use::

    with RedisServer() as redis_server, PostgresServer() as pg:
        url = pg.create_database("study_db")
        api = ManagedProcess(["hpsearch", "serve", "--port", str(port)], log_dir=tmp_path,
                             env={"HPSEARCH_BROKER_URL": redis_server.url})
        api.wait_for_http(f"http://127.0.0.1:{port}/health")
        ...
        api.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx
import psycopg
import redis
from psycopg import sql

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05
LOG_TAIL_LINES = 40


class ServerError(RuntimeError):
    """A server or process failed to start, answer, or stop within its time limit."""


class _Stoppable:
    """Base for anything that registers itself as live until stopped."""

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


# Servers still running at interpreter exit (a test that forgot to stop one, or crashed
# before it could) are stopped here so no orphan outlives the test run.
_live: set[_Stoppable] = set()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        with contextlib.suppress(Exception):
            server.stop()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists and is not a zombie (dead, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:  # an orphan's zombie lingers until its new parent reaps it; it runs nothing
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # vanished just now, or no procfs at all
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def log_tail(path: Path | None, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or a note when there is none."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:]) or "(log is empty)"


def _wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout: float,
    process: subprocess.Popen[bytes] | None,
    log: Path | None,
) -> None:
    """Poll `ready` until true; fail early if `process` exits, and at `timeout` in any case."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerError(
                f"{what}: process {process.pid} exited with code {process.returncode} "
                f"before it was ready.\n--- log tail ({log}) ---\n{log_tail(log)}"
            )
        if ready():
            return
        time.sleep(POLL_INTERVAL_S)
    raise ServerError(
        f"{what}: not ready after {timeout:.0f} s.\n--- log tail ({log}) ---\n{log_tail(log)}"
    )


def _terminate(
    process: subprocess.Popen[bytes],
    sig: signal.Signals,
    *,
    timeout: float,
    group: bool = False,
) -> None:
    """Send `sig` to our own child, wait up to `timeout`, then SIGKILL it (and its group)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_now(process, group=group)
    if group:
        # The leader is gone; its children (e.g. Celery's pool) may not be. The group id is
        # the leader's pid because we started it with start_new_session=True.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)


def _kill_now(process: subprocess.Popen[bytes], *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_TIMEOUT_S)


class ManagedProcess(_Stoppable):
    """Any command (uvicorn via `hpsearch serve`, a Celery worker, ...) run as our child.

    Output (stdout and stderr) goes to `<log_dir>/<name>.log`. The process leads its own
    session, so `kill()` can take its children (a Celery pool) down with it.
    """

    def __init__(
        self,
        args: Sequence[str],
        *,
        log_dir: Path,
        name: str | None = None,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: Path | None = None,
    ) -> None:
        """Start `args` now. `env` is added to os.environ (or replaces it if not inherit_env)."""
        self.args = list(args)
        self.name = name or Path(self.args[0]).name
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = _unique_path(log_dir, self.name, ".log")
        full_env = {**os.environ, **(env or {})} if inherit_env else dict(env or {})
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            self.args,
            env=full_env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _live.add(self)

    @property
    def pid(self) -> int:
        """The pid of the process we started."""
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        """Exit code, or None while it runs."""
        return self.process.poll()

    def is_running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of this process's output, for assertion messages."""
        if not self._log.closed:  # still ours to write; a stopped one's log stays readable
            self._log.flush()
        return log_tail(self.log_path, lines)

    def describe(self) -> str:
        """One block naming the command, its state and its log tail: use in assert messages."""
        state = "running" if self.is_running() else f"exited {self.returncode}"
        return (
            f"{self.name} (pid {self.pid}, {state}): {' '.join(self.args)}\n"
            f"--- log tail ({self.log_path}) ---\n{self.log_tail()}"
        )

    def wait_for_http(
        self, url: str, timeout: float = START_TIMEOUT_S, expect_status: int | None = 200
    ) -> httpx.Response:
        """Poll `url` until it answers (with `expect_status`, unless None); return the answer."""
        answer: list[httpx.Response] = []

        def ready() -> bool:
            try:
                response = httpx.get(url, timeout=2.0)
            except httpx.HTTPError:
                return False
            if expect_status is not None and response.status_code != expect_status:
                return False
            answer.append(response)
            return True

        _wait_until(
            ready, what=f"{self.name} at {url}", timeout=timeout, process=self.process,
            log=self.log_path,
        )  # fmt: skip
        return answer[0]

    def wait_for_log(self, text: str, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until `text` appears in the process's output (e.g. Celery's 'ready.')."""
        _wait_until(
            lambda: text in self.log_tail(lines=10_000),
            what=f"{self.name} printing {text!r}",
            timeout=timeout,
            process=self.process,
            log=self.log_path,
        )

    def wait(self, timeout: float = START_TIMEOUT_S) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"still running after {timeout:.0f} s: {self.describe()}") from exc

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM the process (graceful), wait, SIGKILL it and its group after `timeout`."""
        _terminate(self.process, signal.SIGTERM, timeout=timeout, group=True)
        self._close()

    def kill(self) -> None:
        """SIGKILL the process and everything in its session at once: a machine dying."""
        _kill_now(self.process, group=True)
        self._close()

    def _close(self) -> None:
        self._log.close()
        _live.discard(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _unique_path(folder: Path, stem: str, suffix: str) -> Path:
    path = folder / f"{stem}{suffix}"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


class _Server(_Stoppable):
    """A server process we own: started, restarted on the same port, stopped by its pid."""

    _process: subprocess.Popen[bytes] | None

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    def _stop_process(self, timeout: float) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def restart(self, timeout: float = START_TIMEOUT_S, down_s: float = 0.0) -> Self:
        """Stop, stay down `down_s` seconds, then start again on the same port with a new pid
        (Redis loses its data, PostgreSQL keeps it)."""
        with self.down(timeout):
            time.sleep(down_s)
        return self

    @contextlib.contextmanager
    def down(self, timeout: float = START_TIMEOUT_S) -> Iterator[None]:
        """Stopped for the body of the `with` block, then started again as by `restart`: an
        outage that lasts as long as the test needs."""
        self._stop_process(STOP_TIMEOUT_S)
        self._process = None
        try:
            yield
        finally:
            self.start(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(_Server):
    """An in-memory redis-server on 127.0.0.1 (no RDB, no AOF), owned by this process."""

    def __init__(self, port: int | None = None, log_dir: Path | None = None) -> None:
        """Prepare (not start) a server; `port` defaults to a free one."""
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise ServerError("redis-server not found on PATH: run scripts/install-system-deps.sh")
        self.port = port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="hpsearch-redis-"))
        self.log_dir = log_dir or self._tmp
        self.log_path = self.log_dir / f"redis-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection URL of database 0, e.g. redis://127.0.0.1:6400/0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        """The redis-server pid; raises if not started."""
        if self._process is None:
            raise ServerError("RedisServer is not running")
        return self._process.pid

    def client(self) -> redis.Redis:
        """A new client for this server (caller closes it)."""
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:
        """Start redis-server and wait until it answers PING."""
        if self._process is not None and self._process.poll() is None:
            return self
        args = [
            self.binary or "redis-server",
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--dir", str(self._tmp),
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        _live.add(self)
        _wait_until(
            self._pings, what=f"redis-server on port {self.port}", timeout=timeout,
            process=self._process, log=self.log_path,
        )  # fmt: skip
        return self

    def _pings(self) -> bool:
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM our redis-server, wait, SIGKILL after `timeout`. Idempotent."""
        self._stop_process(timeout)
        shutil.rmtree(self._tmp, ignore_errors=True)
        _live.discard(self)

    def _stop_process(self, timeout: float) -> None:
        if self._process is not None:
            _terminate(self._process, signal.SIGTERM, timeout=timeout)


def find_postgres_bindir() -> Path:
    """The folder holding `initdb` and `postgres`: PATH, `pg_config --bindir`, Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        )
        candidates.append(Path(out.stdout.strip()))
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(Path(d) for d in debian)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise ServerError(
        "PostgreSQL server binaries (initdb, postgres) not found on PATH, via pg_config, or in "
        "/usr/lib/postgresql/*/bin: run scripts/install-system-deps.sh"
    )


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(p) for p in version.split(".") if p.isdigit())


class PostgresServer(_Server):
    """A throw-away PostgreSQL cluster on 127.0.0.1, trust auth, superuser `hpsearch`.

    As root, the cluster belongs to the `postgres` user (initdb refuses root): the temp dir is
    chowned to it and the child processes are started with `user=`/`group=` (a setuid in the
    child before exec). Unlike `runuser`, which forks and stays the parent, this makes the
    pid we hold the postmaster's own, so our signals reach postgres directly.
    """

    USER = "hpsearch"
    DATABASE = "hpsearch"

    def __init__(self, port: int | None = None, log_dir: Path | None = None) -> None:
        """Prepare (not start) a cluster; `port` defaults to a free one."""
        self.bindir = find_postgres_bindir()
        self.port = port or free_port()
        self._tmp = Path(tempfile.mkdtemp(prefix="hpsearch-pg-"))
        self.data_dir = self._tmp / "data"
        self.socket_dir = self._tmp / "sock"
        self.log_dir = log_dir or self._tmp
        self.log_path = self.log_dir / f"postgres-{self.port}.log"
        self._run_as = _postgres_account() if os.geteuid() == 0 else None
        self._process: subprocess.Popen[bytes] | None = None
        self.socket_dir.mkdir()
        if self._run_as is not None:
            uid, gid = self._run_as
            for path in (self._tmp, self.socket_dir):
                os.chown(path, uid, gid)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the `hpsearch` database."""
        return self.database_url(self.DATABASE)

    def database_url(self, name: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of database `name` on this server."""
        return f"postgresql+psycopg://{self.USER}@127.0.0.1:{self.port}/{name}"

    def conninfo(self, dbname: str | None = None) -> str:
        """A libpq connection string for psycopg.connect()."""
        name = dbname or self.DATABASE
        return f"host=127.0.0.1 port={self.port} user={self.USER} dbname={name} connect_timeout=5"

    @property
    def pid(self) -> int:
        """The postmaster's pid; raises if not started."""
        if self._process is None:
            raise ServerError("PostgresServer is not running")
        return self._process.pid

    def start(self, timeout: float = START_TIMEOUT_S) -> Self:
        """initdb (first time only), start postgres, wait for connections, create `hpsearch`."""
        if self._process is not None and self._process.poll() is None:
            return self
        first_start = not (self.data_dir / "PG_VERSION").exists()
        if first_start:
            self._initdb()
        self._process = self._spawn(self._postgres_args())
        _live.add(self)
        _wait_until(
            self._accepts, what=f"postgres on port {self.port}", timeout=timeout,
            process=self._process, log=self.log_path,
        )  # fmt: skip
        if first_start:
            self.create_database(self.DATABASE)
        return self

    def _initdb(self) -> None:
        args = [
            str(self.bindir / "initdb"), "-D", str(self.data_dir), "-A", "trust",
            "-U", self.USER, "--no-sync", "--no-locale", "-E", "UTF8",
        ]  # fmt: skip
        process = self._spawn(args)
        try:
            code = process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            _kill_now(process, group=False)
            code = -1
        if code != 0:
            raise ServerError(
                f"initdb failed with code {code}.\n--- log tail ({self.log_path}) ---\n"
                f"{log_tail(self.log_path)}"
            )

    def _postgres_args(self) -> list[str]:
        return [
            str(self.bindir / "postgres"), "-D", str(self.data_dir),
            "-k", str(self.socket_dir), "-h", "127.0.0.1", "-p", str(self.port),
            "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off",
            "-c", "max_connections=200",
        ]  # fmt: skip

    def _spawn(self, args: list[str]) -> subprocess.Popen[bytes]:
        """Start a child as the cluster's owner, output appended to our log."""
        uid, gid = self._run_as or (None, None)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        with self.log_path.open("ab") as log:
            if self._run_as is not None:
                os.chown(self.log_path, *self._run_as)
            return subprocess.Popen(
                args, cwd=self._tmp, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                user=uid, group=gid, extra_groups=None if uid is None else [],
            )  # fmt: skip

    def _accepts(self) -> bool:
        try:
            with psycopg.connect(self.conninfo("postgres")) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(self.conninfo("postgres"), autocommit=True)

    def create_database(self, name: str) -> str:
        """CREATE DATABASE `name` (an empty copy of template1); return its SQLAlchemy URL."""
        with self._admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """DROP DATABASE `name`, disconnecting anyone still connected to it."""
        with self._admin() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Fast shutdown (SIGINT) of our postmaster, SIGKILL after `timeout`; remove the dir."""
        self._stop_process(timeout)
        shutil.rmtree(self._tmp, ignore_errors=True)
        _live.discard(self)

    def _stop_process(self, timeout: float) -> None:
        if self._process is not None:
            # SIGKILL on the postmaster alone would orphan its backends; kill the group then.
            _terminate(self._process, signal.SIGINT, timeout=timeout, group=True)


def _postgres_account() -> tuple[int, int]:
    """(uid, gid) of the `postgres` user, which owns the cluster when we run as root."""
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerError(
            "running as root, initdb needs the unprivileged `postgres` user, which does not "
            "exist: install the postgresql package (scripts/install-system-deps.sh)"
        ) from exc
    return entry.pw_uid, entry.pw_gid


HPSEARCH = str(Path(sys.executable).parent / "hpsearch")


@dataclass
class LiveApi:
    """A running `hpsearch serve`: its process, base URL and the bootstrap admin's token."""

    server: ManagedProcess
    base: str
    token: str


@contextlib.contextmanager
def serving_api(folder: Path, env: Mapping[str, str]) -> Iterator[LiveApi]:
    """`hpsearch serve` on a free port with `env` added to ours, stopped on leaving."""
    port = free_port()
    server = ManagedProcess(
        [HPSEARCH, "serve", "--host", "127.0.0.1", "--port", str(port)],
        log_dir=folder,
        name="api",
        env=env,
    )
    try:
        server.wait_for_http(f"http://127.0.0.1:{port}/health")
        token = re.search(r"hps_[\w-]+", server.log_path.read_text())
        assert token is not None, server.describe()
        yield LiveApi(server, f"http://127.0.0.1:{port}", token.group(0))
    finally:
        server.stop()
