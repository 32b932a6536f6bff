"""A throw-away PostgreSQL cluster on 127.0.0.1 for tests: initdb into a temporary folder, start, stop.

PostgreSQL refuses to run as root, and CI runs as root: there the cluster is made and run by the ``postgres`` system
user (the Debian package creates it). Each test gets a database of its own (``database()``).
"""

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llama_stack_judge.embedded.server import free_port

USER = "judge"  # the cluster's superuser; trust authentication on 127.0.0.1 only


def _binary(name: str) -> str | None:
    """A PostgreSQL server program: on the PATH, or in Debian's versioned folder."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return versions[-1] if versions else None


def available() -> bool:
    """Whether this machine can run a cluster (the server programs, and a non-root user when run as root)."""
    if _binary("initdb") is None or _binary("pg_ctl") is None:
        return False
    return os.geteuid() != 0 or _system_user() is not None


def _system_user() -> str | None:
    import pwd

    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres").pw_name
    return None


@dataclass(frozen=True)
class Postgres:
    """A running cluster: where it listens, and how to make databases on it."""

    host: str
    port: int

    def database(self) -> str:
        """A new, empty database's name."""
        name = f"judge_{uuid.uuid4().hex[:12]}"
        subprocess.run(
            [
                "psql",
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                USER,
                "-d",
                "postgres",
                "-c",
                f"CREATE DATABASE {name}",
            ],
            check=True,
            capture_output=True,
        )
        return name

    def backends(self, database: str, inference_store: Path | None) -> dict[str, dict[str, Any]]:
        """The ``storage.backends`` of a run config that keeps its registry and our tables in ``database``.

        With a path, the stack's inference store stays on sqlite there: on any other backend it writes through
        worker tasks that never end, and the library client, which waits for every task after each call, hangs.
        Served replicas (``None``) keep it in ``database`` too: they would lock each other out of one sqlite file.
        """
        common = {"host": self.host, "port": self.port, "db": database, "user": USER, "password": "unused"}
        inference = {"type": "sql_postgres", **common}
        if inference_store is not None:
            inference = {"type": "sql_sqlite", "db_path": str(inference_store)}
        return {
            "kv_default": {"type": "kv_postgres", **common},
            "sql_default": {"type": "sql_postgres", **common},
            "sql_inference": inference,
        }


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextlib.contextmanager
def cluster() -> Iterator[Postgres]:
    """A cluster started for the ``with`` block, and removed after it."""
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    assert initdb and pg_ctl, "PostgreSQL's initdb and pg_ctl are not installed"
    root = Path(tempfile.mkdtemp(prefix="judge-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    try:
        subprocess.run(
            _as_server_user([initdb, "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]),
            check=True,
            capture_output=True,
        )
        options = f"-p {port} -h 127.0.0.1 -k {sockets} -c fsync=off -c max_connections=200"
        started = subprocess.run(
            _as_server_user([pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "start"]),
            capture_output=True,
            text=True,
        )
        if started.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {started.stderr}\n{log.read_text() if log.exists() else ''}")
        yield Postgres("127.0.0.1", port)
    finally:
        if data.exists():
            subprocess.run(_as_server_user([pg_ctl, "-D", str(data), "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
