import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import postgres
from tests.stacks import Backends, run_config_file, stack_client

MODES = ["library", "served"]


@pytest.fixture(scope="session", params=MODES)
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One stack per client mode for the whole session, from PROVIDER_CONFIG / PROVIDER_ID."""
    run_yaml = run_config_file(tmp_path_factory.mktemp(f"stack-{request.param}"))
    with stack_client(request.param, run_yaml) as client:
        yield client


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[postgres.Postgres]:
    """A PostgreSQL cluster for the session; without PostgreSQL here the tests skip, except in CI (they fail)."""
    if not postgres.available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: scripts/setup.sh test installs it")
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl)")
    with postgres.cluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request: pytest.FixtureRequest) -> Backends:
    """The stack's storage for one test: sqlite files in its state folder, or a fresh database on PostgreSQL."""
    if request.param == "sqlite":
        return None
    cluster: postgres.Postgres = request.getfixturevalue("postgres_cluster")
    tmp_path: Path = request.getfixturevalue("tmp_path")
    return cluster.backends(cluster.database(), tmp_path / "inference_store.db")
