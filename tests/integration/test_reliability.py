"""Faults and load on a served stack judging through remote::openai against a fake judge that misbehaves."""

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from llama_stack_judge.cli import endpoint_providers
from tests.fake_openai import FakeServer, Fault, fake_openai
from tests.stacks import library_client, run_config_file, start_server, stop_server

pytestmark = pytest.mark.integration

TEMPLATE = "Answer: {generated_answer}"
PARAMS = {
    "type": "llm_as_judge",
    "judge_model": "",
    "prompt_template": TEMPLATE,
    "judge_score_regexes": [r"\[\[(\d+)\]\]"],
    "aggregation_functions": ["average"],
}
FUNCTION = "judge::helpfulness-v1"


def _rating(answer: str) -> int:
    return int(answer.rsplit(" ", 1)[-1]) % 10 + 1


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Any, FakeServer]]:
    """A served stack whose judge is the fake server answering with the test's ``reply`` (its parameter)."""
    reply = request.param
    with fake_openai("judge", reply) as server:
        providers = endpoint_providers(server.url, "judge", "none")
        providers["scoring"][0]["config"] |= {
            "max_concurrency": 8,
            "max_retries": 3,
            "timeout_s": 4.0,
            "retry_for_s": 6.0,
        }
        process, client = start_server(run_config_file(tmp_path / "state", providers))
        try:
            yield client, server
        finally:
            stop_server(process)


class FaultyJudge:
    """Rates ``row i`` as i % 10 + 1, after failing its first attempt in one of several ways for some rows."""

    def __init__(self) -> None:
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]]) -> str | Fault:
        answer = messages[-1]["content"].removeprefix("Answer: ")
        index = int(answer.rsplit(" ", 1)[-1])
        with self.lock:
            self.attempts[answer] += 1
            first = self.attempts[answer] == 1
        verdict = f"Rating: [[{_rating(answer)}]]"
        if index == 3:
            return Fault(status=500)  # the judge never recovers for this row
        if first and index % 5 == 0:
            return Fault(status=500)
        if first and index % 7 == 1:
            return Fault(delay_s=5.0, then=verdict)  # longer than the provider's 4 s timeout
        if first and index % 11 == 2:
            return Fault(body=b"{not json")
        return verdict


@pytest.mark.parametrize("served", [FaultyJudge()], indirect=True)
def test_faults_are_retried_or_accounted_and_nothing_is_lost(served: tuple[Any, FakeServer]) -> None:
    client, server = served
    tag = uuid.uuid4().hex[:6]
    rows = [{"input_query": "q", "generated_answer": f"{tag} answer {i}"} for i in range(50)]
    result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}).results[FUNCTION]
    assert len(result.score_rows) == 50
    statuses = [row["status"] for row in result.score_rows]
    assert statuses == ["inference_error" if i == 3 else "scored" for i in range(50)]
    assert [row["score"] for i, row in enumerate(result.score_rows) if i != 3] == [
        float(_rating(row["generated_answer"])) for i, row in enumerate(rows) if i != 3
    ]
    assert "InternalServerError" in result.score_rows[3]["error"]
    aggregated = result.aggregated_results
    assert (aggregated["n_scored"], aggregated["n_inference_error"], aggregated["n_total"]) == (49, 1, 50)
    assert aggregated["usage"]["retries"] >= 1 + 8 + 1  # row 3, the timeouts; the rest retried inside the client
    asked = Counter(request["messages"][-1]["content"] for request in server.log)
    assert set(asked) == {f"Answer: {row['generated_answer']}" for row in rows}  # every row reached the judge


@pytest.mark.parametrize(
    "served",
    [lambda messages: Fault(delay_s=0.1, then=f"Rating: [[{_rating(messages[-1]['content'])}]]")],
    indirect=True,
)
def test_concurrent_callers_share_the_limit_and_get_their_own_results(served: tuple[Any, FakeServer]) -> None:
    client, server = served

    def caller(number: int) -> bool:
        rows = [{"input_query": "q", "generated_answer": f"caller {number} answer {i}"} for i in range(50)]
        result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}).results[FUNCTION]
        expected = [float(_rating(row["generated_answer"])) for row in rows]
        return [row["score"] for row in result.score_rows] == expected

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(caller, range(32)))
    assert outcomes == [True] * 32  # every caller got its own rows' scores, in order
    assert server.max_in_flight <= 8  # the provider's limit held across the 32 callers
    assert len(server.log) == 32 * 50


class AwayJudge:
    """Answers every request with 503 from the first request until ``away_s`` later, then rates normally."""

    def __init__(self, away_s: float) -> None:
        self.away_s = away_s
        self.first: float | None = None
        self.refused = 0

    def __call__(self, messages: list[dict[str, Any]]) -> str | Fault:
        now = time.monotonic()
        self.first = self.first or now
        if now - self.first < self.away_s:
            self.refused += 1
            return Fault(status=503)
        return f"Rating: [[{_rating(messages[-1]['content'])}]]"


@pytest.mark.parametrize("served", [AwayJudge(away_s=4.0)], indirect=True)
def test_a_judge_that_goes_away_and_comes_back(served: tuple[Any, FakeServer]) -> None:
    client, server = served  # retry_for_s is 6 s here (60 s by default)
    rows = [{"input_query": "q", "generated_answer": f"answer {i}"} for i in range(20)]
    started = time.monotonic()
    result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}).results[FUNCTION]
    assert [row["status"] for row in result.score_rows] == ["scored"] * 20
    assert time.monotonic() - started >= 4.0 and len(server.log) > 20  # it waited the outage out, retrying


class ArrivalLog:
    """Rates every answer after ``delay_s``, noting when each request arrived."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.arrivals: list[float] = []
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict[str, Any]]) -> Fault:
        with self.lock:
            self.arrivals.append(time.monotonic())
        return Fault(delay_s=self.delay_s, then=f"Rating: [[{_rating(messages[-1]['content'])}]]")


def test_call_starts_are_spaced_but_still_overlap(tmp_path: Path) -> None:
    judge = ArrivalLog(delay_s=0.8)
    with fake_openai("judge", judge) as server:
        providers = endpoint_providers(server.url, "judge", "none")
        providers["scoring"][0]["config"] |= {"max_concurrency": 8, "call_spacing_s": 0.05}
        with library_client(run_config_file(tmp_path / "state", providers)) as client:
            rows = [{"input_query": "q", "generated_answer": f"answer {i}"} for i in range(8)]
            result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}).results[FUNCTION]
    assert [row["status"] for row in result.score_rows] == ["scored"] * 8
    # 8 starts at least 50 ms apart (a little less may separate two arrivals: the stack's own time per call varies)
    assert judge.arrivals[-1] - judge.arrivals[0] >= 7 * 0.05 - 0.02
    assert server.max_in_flight == 8  # spaced, not serialized: every call was still in flight together
