"""Start real Redis and PostgreSQL servers on loopback for the tests.

Each server runs from a temporary folder on a free port and is stopped when
the test session ends.  ``WALLIE_TEST_REDIS_URL`` and
``WALLIE_TEST_POSTGRES_URL`` point the tests at servers started elsewhere
(``.ci/run`` starts its own) instead.

PostgreSQL refuses to run as root, so as root the server runs as the user
named by ``WALLIE_TEST_PG_USER`` (default ``postgres``, which Debian's
package creates).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: How long to wait for a server to accept connections, in seconds.
START_TIMEOUT_S = 30


class ServerUnavailable(Exception):
    """Raised when a server binary is missing or the server does not start."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen[bytes] | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerUnavailable(f"The server exited with code {process.returncode}.")

        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)

    raise ServerUnavailable(f"Nothing listened on port {port} after {START_TIMEOUT_S} s.")


@dataclass
class RedisServer:
    """A ``redis-server`` process on loopback."""

    url: str
    process: subprocess.Popen[bytes] | None
    folder: str | None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)

        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)


def start_redis() -> RedisServer:
    """Start ``redis-server`` without persistence on a free port.

    Raises:
      ServerUnavailable: ``redis-server`` is not installed or did not start.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable("redis-server is not installed (Debian: apt-get install redis-server).")

    folder = tempfile.mkdtemp(prefix="wallie-redis-")
    port = free_port()
    command = [
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", folder,
        "--save", "",
        "--appendonly", "no",
        "--loglevel", "warning",
    ]
    log = open(os.path.join(folder, "redis.log"), "wb")  # noqa: SIM115 - kept open for the server
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    _wait_for_port(port, process)
    return RedisServer(f"redis://127.0.0.1:{port}/0", process, folder)


def _postgres_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key)
    if candidates:
        return Path(candidates[-1])

    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent

    raise ServerUnavailable("PostgreSQL is not installed (Debian: apt-get install postgresql).")


def _version_key(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


@dataclass
class PostgresServer:
    """A PostgreSQL server on loopback with a superuser ``wallie`` and no password."""

    port: int
    folder: str | None
    run_as: list[str]
    bin_dir: Path | None
    base_url: str

    def url(self, database: str) -> str:
        """Return the URL of ``database`` on this server."""
        return f"{self.base_url}/{database}"

    def stop(self) -> None:
        if self.folder is None or self.bin_dir is None:
            return

        subprocess.run(
            [*self.run_as, str(self.bin_dir / "pg_ctl"), "-D", f"{self.folder}/data",
             "-m", "immediate", "-w", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def _run_as_prefix() -> tuple[list[str], int | None, int | None]:
    if os.geteuid() != 0:
        return [], None, None

    user = os.environ.get("WALLIE_TEST_PG_USER", "postgres")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServerUnavailable(
            f"Running as root and user {user!r} does not exist; PostgreSQL refuses "
            "to run as root. Create an unprivileged user or set WALLIE_TEST_PG_USER."
        ) from None

    return ["runuser", "-u", user, "--"], entry.pw_uid, entry.pw_gid


def start_postgres() -> PostgresServer:
    """Initialise and start a throwaway PostgreSQL cluster on a free port.

    Raises:
      ServerUnavailable: PostgreSQL is not installed or did not start.
    """
    bin_dir = _postgres_bin_dir()
    run_as, uid, gid = _run_as_prefix()
    folder = tempfile.mkdtemp(prefix="wallie-postgres-")
    if uid is not None and gid is not None:
        os.chown(folder, uid, gid)

    port = free_port()
    data = f"{folder}/data"
    _check_call([*run_as, str(bin_dir / "initdb"), "-D", data, "-U", "wallie",
                 "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"])
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    _check_call([*run_as, str(bin_dir / "pg_ctl"), "-D", data, "-o", options,
                 "-l", f"{folder}/postgres.log", "-w", "-t", str(START_TIMEOUT_S), "start"])
    return PostgresServer(port, folder, run_as, bin_dir, f"postgresql://wallie@127.0.0.1:{port}")


def _check_call(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ServerUnavailable(
            f"{' '.join(command)} failed with code {result.returncode}: {result.stderr.strip()}"
        )


def external_postgres(url: str) -> PostgresServer:
    """Wrap a server started elsewhere; ``url`` has no database name."""
    return PostgresServer(0, None, [], None, url.rstrip("/"))
