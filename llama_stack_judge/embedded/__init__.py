"""The embedded default judge: a packaged GGUF model served by a managed llama.cpp server.

The judge still goes through the stack: llama-stack's own ``remote::llama-cpp-server`` inference provider points at
the managed server.
"""

from pathlib import Path
from typing import Any

from llama_stack_judge.embedded.models import DEFAULT_MODEL, embedded_model, model_file
from llama_stack_judge.embedded.server import LlamaCppServer, ServerSettings
from llama_stack_judge.stack_config import judging_with

EMBEDDED_PROVIDER_ID = "embedded"
# The server generates one reply at a time: more calls in flight only queue there and eat into their timeouts.
EMBEDDED_CONCURRENCY = 1
EMBEDDED_TIMEOUT_S = 600  # a long MT-bench prompt with a reference takes a minute or more on 2 cores
# The verdict first, weighted by the judge's probabilities of each rating (or choice) where it is written, then a
# short explanation: on the MT-bench development split this beat the sampled JSON verdict on every figure at less
# time per judgment (README, "How good the embedded judge is"; docs/benchmarks.md). The grammar forces the
# "[[verdict]]" first, so the verdict is read before any explanation is written.
EMBEDDED_JUDGE_OPTIONS: dict[str, Any] = {
    "verdict_grammar": True,
    "structured_output": False,  # expected verdicts are read from the text's "[[", not from JSON
    "verdict_weighting": "expected",
    "verdict_first": True,
    # The explanation is cut by tokens, not by the grammar's character cap: near a character cap only short tokens
    # fit, and this model then ends its English with a stray Chinese character (~8 % of replies at 300 characters).
    "max_tokens": 64,
}


def embedded_server(
    model_name: str = DEFAULT_MODEL, *, port: int | None = None, log_path: Path | None = None
) -> LlamaCppServer:
    """A (not yet started) server for the packaged model ``model_name``, its file verified."""
    model = embedded_model(model_name)
    settings = ServerSettings(
        model_path=model_file(model),
        model_alias=model.name,
        port=port,
        min_memory_gb=model.min_memory_gb,
    )
    return LlamaCppServer(settings, log_path=log_path)


def embedded_providers(base_url: str, model_name: str) -> dict[str, list[dict[str, Any]]]:
    """Providers that judge with the embedded model at ``base_url`` through ``remote::llama-cpp-server``."""
    return judging_with(
        EMBEDDED_PROVIDER_ID,
        "remote::llama-cpp-server",
        {"base_url": base_url},
        model_name,
        max_concurrency=EMBEDDED_CONCURRENCY,
        timeout_s=EMBEDDED_TIMEOUT_S,
        judge_options=dict(EMBEDDED_JUDGE_OPTIONS),
    )
