from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stacks import run_config_file, stack_client

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
