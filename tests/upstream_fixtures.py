"""Fixtures that give llama-stack's own integration tests our stacks (copied as their conftest.py at test time)."""

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stacks import run_config_file, stack_client


class _InProcess:
    """The library client as those tests expect one: it has no server base_url (they skip what needs HTTP)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        if name == "base_url":
            raise AttributeError(name)
        return getattr(self._client, name)


@pytest.fixture(scope="session", params=["library", "served"])
def llama_stack_client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with stack_client(request.param, run_config_file(tmp_path_factory.mktemp(request.param))) as client:
        yield _InProcess(client) if request.param == "library" else client


@pytest.fixture
def judge_model_id() -> str:
    return "scripted/judge"
