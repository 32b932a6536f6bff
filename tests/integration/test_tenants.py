"""Tenant isolation on a served stack with authentication on: alice's jobs, datasets and judgments are hers.

alice and carol share a team; bob shares nothing with either. The stack's default access policy then lets carol
read what alice owns and keeps bob out; an explicit owner-only policy keeps carol out too.
"""

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from llama_stack_client import AuthenticationError, LlamaStackClient, NotFoundError

from tests.auth_server import auth_endpoint
from tests.integration.test_jobs import CANDIDATE, _kept_generations, _kill_once
from tests.stacks import (
    DETAILS,
    SHORT_LEASES,
    not_found,
    register_benchmark,
    run_config_file,
    start_server,
    stop_server,
    wait_for_job,
    with_eval_config,
)

pytestmark = [pytest.mark.integration, pytest.mark.served]

USERS = {
    "alice-token": {"principal": "alice", "attributes": {"teams": ["blue"]}},
    "bob-token": {"principal": "bob", "attributes": {"teams": ["red"]}},
    "carol-token": {"principal": "carol", "attributes": {"teams": ["blue"]}},
}
OWNER_ONLY = [
    {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
    {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
    {"permit": {"actions": ["create"]}},
]
ROW = {"input_query": "What is the capital of France?", "generated_answer": "Paris", "expected_answer": "Paris"}


def _auth_run_config(state: Path, endpoint: str, access_policy: list[dict[str, Any]] | None = None) -> Path:
    run_yaml = run_config_file(state, with_eval_config(**SHORT_LEASES))
    config = yaml.safe_load(run_yaml.read_text())
    config["server"]["auth"] = {"provider_config": {"type": "custom", "endpoint": endpoint}}
    if access_policy is not None:
        config["server"]["auth"]["access_policy"] = access_policy
    run_yaml.write_text(yaml.safe_dump(config, sort_keys=False))
    return run_yaml


class Tenants:
    """One served stack with authentication on, and a client per user."""

    def __init__(self, process: Any, base_url: str) -> None:
        self.process = process
        self.base_url = base_url

    def client(self, token: str | None) -> LlamaStackClient:
        return LlamaStackClient(base_url=self.base_url, api_key=token, timeout=60, max_retries=0)

    @property
    def alice(self) -> LlamaStackClient:
        return self.client("alice-token")

    @property
    def bob(self) -> LlamaStackClient:
        return self.client("bob-token")

    @property
    def carol(self) -> LlamaStackClient:
        return self.client("carol-token")


@contextlib.contextmanager
def _served(run_yaml: Path) -> Iterator[Tenants]:
    process, client = start_server(run_yaml)
    try:
        yield Tenants(process, str(client.base_url).rstrip("/"))
    finally:
        stop_server(process)


@pytest.fixture(scope="module", params=["default-policy", "owner-only"])
def tenants(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    policy = OWNER_ONLY if request.param == "owner-only" else None
    with auth_endpoint(USERS) as endpoint:
        run_yaml = _auth_run_config(tmp_path_factory.mktemp(request.param), endpoint, policy)
        with _served(run_yaml) as stack:
            stack.policy = request.param  # type: ignore[attr-defined]
            yield stack


def test_a_job_is_seen_and_cancelled_only_by_whom_the_policy_allows(tenants: Tenants) -> None:
    alice, bob, carol = tenants.alice, tenants.bob, tenants.carol
    with pytest.raises(AuthenticationError):
        tenants.client(None).alpha.eval.jobs.status("any", benchmark_id="any")
    rows = [{"input_query": f"SLOW question {i}", "expected_answer": "slow"} for i in range(4)]
    benchmark_id = register_benchmark(alice, rows, ["judge::subset_of"])
    job = alice.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
    for route in (
        lambda c: c.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id),
        lambda c: c.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id),
        lambda c: c.alpha.eval.jobs.cancel(job.job_id, benchmark_id=benchmark_id),
    ):
        with not_found(f"no eval job {job.job_id}"):  # the same answer as for a job that does not exist
            route(bob)
    if tenants.policy == "default-policy":  # type: ignore[attr-defined]
        assert str(carol.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id).status) == "in_progress"
    else:
        with not_found(f"no eval job {job.job_id}"):
            carol.alpha.eval.jobs.status(job.job_id, benchmark_id=benchmark_id)
    assert wait_for_job(alice, benchmark_id, job.job_id, {"completed", "cancelled", "failed"}) == "completed"
    scores = alice.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id).scores
    assert [row["score"] for row in scores["judge::subset_of"].score_rows] == [1.0] * 4


def test_another_users_benchmark_and_dataset_cannot_be_run_or_read(tenants: Tenants) -> None:
    alice, bob = tenants.alice, tenants.bob
    # alice's benchmark over a dataset everyone may read (registered by the run config, so unowned)
    benchmark_id = f"alice-{uuid.uuid4().hex[:8]}"
    alice.alpha.benchmarks.register(
        benchmark_id=benchmark_id,
        dataset_id="mt-bench-questions",
        scoring_functions=["judge::subset_of"],
        provider_id="judge-eval",
    )
    evaluated = alice.alpha.eval.evaluate_rows(  # alice has used it in this process
        benchmark_id, input_rows=[ROW], scoring_functions=["judge::subset_of"], benchmark_config=CANDIDATE
    )
    assert evaluated.scores["judge::subset_of"].score_rows[0]["score"] == 1.0
    with not_found(f"benchmark {benchmark_id} is not registered"):
        bob.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
    with not_found(f"benchmark {benchmark_id} is not registered"):
        bob.alpha.eval.evaluate_rows(
            benchmark_id, input_rows=[ROW], scoring_functions=["judge::subset_of"], benchmark_config=CANDIDATE
        )
    dataset_id = f"alice-{uuid.uuid4().hex[:8]}"
    alice.beta.datasets.register(
        purpose="eval/question-answer", source={"type": "rows", "rows": [ROW]}, dataset_id=dataset_id
    )
    scored = alice.scoring.score_batch(dataset_id=dataset_id, scoring_functions={"judge::subset_of": None})
    assert scored.results["judge::subset_of"].score_rows[0]["score"] == 1.0
    with not_found(f"score_batch: dataset {dataset_id}"):
        bob.scoring.score_batch(dataset_id=dataset_id, scoring_functions={"judge::subset_of": None})
    # bob's own benchmark over alice's dataset (the stack registers it without looking): her rows stay unread
    bobs = f"bob-{uuid.uuid4().hex[:8]}"
    bob.alpha.benchmarks.register(
        benchmark_id=bobs, dataset_id=dataset_id, scoring_functions=["judge::subset_of"], provider_id="judge-eval"
    )
    with not_found(f"benchmark {bobs}: dataset {dataset_id}"):
        bob.alpha.eval.run_eval(bobs, benchmark_config=CANDIDATE)


def test_the_judgment_cache_tells_no_user_what_another_judged(tenants: Tenants) -> None:
    alice, bob = tenants.alice, tenants.bob
    row = {**ROW, "generated_answer": f"Paris, says alice {uuid.uuid4().hex}"}

    def usage(client: LlamaStackClient) -> tuple[int, int]:
        result = client.scoring.score(
            input_rows=[row], scoring_functions={"judge::helpfulness-v1": None}, extra_headers=DETAILS
        )
        counts = result.results["judge::helpfulness-v1"].aggregated_results["usage"]
        return counts["cache_hits"], counts["inference_calls"]

    assert usage(alice) == (0, 1)
    assert usage(bob) == (0, 1)  # a hit here would confirm that alice judged this very text
    assert usage(alice) == (1, 0) and usage(bob) == (1, 0)  # each reuses their own


def test_a_resumed_job_runs_as_its_user_whoever_calls_first(tmp_path: Path) -> None:
    with auth_endpoint(USERS) as endpoint:
        run_yaml = _auth_run_config(tmp_path / "state", endpoint)
        rows = [{"input_query": f"SLOW question {i}", "expected_answer": "slow"} for i in range(8)]
        with _served(run_yaml) as stack:
            benchmark_id = register_benchmark(stack.alice, rows, ["judge::subset_of"], save_results_dataset=True)
            job = stack.alice.alpha.eval.run_eval(benchmark_id, benchmark_config=CANDIDATE)
            _kill_once(stack.process, lambda: len(_kept_generations(tmp_path / "state", job.job_id)) >= 2)
        with _served(run_yaml) as stack:
            # bob's failing call is the process's first eval call: it resumes alice's job, which must not become his
            with not_found("no eval job nope"):
                stack.bob.alpha.eval.jobs.status("nope", benchmark_id=benchmark_id)
            assert wait_for_job(stack.alice, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
            results = f"{benchmark_id}-results-{job.job_id[:12]}"
            assert len(stack.alice.beta.datasets.iterrows(results).data) == 8  # saved as alice's
            with pytest.raises(NotFoundError):
                stack.bob.beta.datasets.retrieve(results)
            with not_found(f"no eval job {job.job_id}"):
                stack.bob.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
