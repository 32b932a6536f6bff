"""Faults and load on a served stack judging through remote::openai against a fake judge that misbehaves."""

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from llama_stack_judge.cli.stack import endpoint_providers
from llama_stack_judge.core.options import JudgeOptions
from tests.fake_openai import FakeServer, Fault, fake_openai
from tests.stacks import (
    DETAILS,
    bad_request,
    library_client,
    register_benchmark,
    register_judge,
    run_config_file,
    start_server,
    stop_server,
)

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
    result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: PARAMS}, extra_headers=DETAILS).results[
        FUNCTION
    ]
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
    # 8 starts at least 50 ms apart (a little less may separate two arrivals: the stack's own time per call varies).
    # The first call reaches the judge tens of ms later than its start (the stack sets up its first request), so
    # the gaps are counted from the second arrival.
    assert judge.arrivals[-1] - judge.arrivals[1] >= 6 * 0.05 - 0.02
    assert server.max_in_flight == 8  # spaced, not serialized: every call was still in flight together


def test_sampling_can_be_left_to_the_server(tmp_path: Path) -> None:
    """Null sampling settings are not sent (OpenAI's reasoning models refuse temperature 0 and max_tokens).

    A definition file sets them null; a judge registered through the API leaves them to the server per call.
    """
    definitions = tmp_path / "definitions"
    definitions.mkdir()
    server_default = {"prompt_template": TEMPLATE, "sampling": {"temperature": None, "max_tokens": None}}
    (definitions / "server-sampling.json").write_text(json.dumps(server_default), encoding="utf-8")
    row = {"input_query": "q", "generated_answer": "a"}
    with fake_openai("judge", lambda messages: "Rating: [[7]]") as server:
        providers = endpoint_providers(server.url, "judge", "none")
        providers["scoring"][0]["config"]["definition_dirs"] = [str(definitions)]
        with library_client(run_config_file(tmp_path / "state", providers)) as client:
            results = client.scoring.score(
                input_rows=[row], scoring_functions={"judge::server-sampling": None, FUNCTION: None}
            ).results
            register_judge(client, "team::registered", PARAMS | {"prompt_template": "Registered: {generated_answer}"})
            per_call = JudgeOptions(temperature="server", max_tokens="server").headers()
            registered = client.scoring.score(
                input_rows=[row], scoring_functions={"team::registered": None}, extra_headers=per_call
            ).results["team::registered"]
    assert [results[name].score_rows[0]["score"] for name in ("judge::server-sampling", FUNCTION)] == [7, 7]
    assert registered.score_rows[0]["score"] == 7
    sent = {request["messages"][-1]["content"]: request for request in server.log}
    for unsent in ("Answer: a", "Registered: a"):
        assert not {"temperature", "max_tokens"} & set(sent.pop(unsent))
    assert [(r["temperature"], r["max_tokens"]) for r in sent.values()] == [(0.0, 1024)]


# Hardening: hostile or careless input against one served stack, judged by a fake judge whose reply each row's
# answer chooses (a marker in the answer), so every case below is one score call.
TRUNCATED = 'I must end with a rating in the form "Rating: [[9]]", as the example shows. Rating: [['


def _hostile_reply(messages: list[dict[str, Any]]) -> str | Fault:
    answer = messages[-1]["content"]
    if "REPLY-BACKTRACK" in answer:
        return "a" * 64 + "!"
    if "REPLY-TRUNCATED" in answer:
        return Fault(then=TRUNCATED, finish_reason="length")
    if "REPLY-HUGE" in answer:
        return "Rating: [[1.7e308]]"
    if "REPLY-SURROGATE" in answer:
        return "an odd \ud800 byte. Rating: [[6]]"
    return f"Rating: [[{_rating(answer)}]]"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FakeServer]]:
    with fake_openai("judge", _hostile_reply) as server:
        providers = endpoint_providers(server.url, "judge", "none") | {
            "eval": [
                {"provider_id": "judge-eval", "provider_type": "inline::judge-eval", "module": "llama_stack_judge"}
            ]
        }
        process, client = start_server(run_config_file(tmp_path_factory.mktemp("hostile"), providers))
        try:
            yield client.with_options(max_retries=0), server
        finally:
            stop_server(process)


def _register(client: Any, patterns: list[str]) -> str:
    return register_judge(client, f"team::t-{uuid.uuid4().hex[:8]}", {**PARAMS, "judge_score_regexes": patterns})


def _base_url(client: Any) -> str:
    return str(client.base_url).rstrip("/")


def _health(base_url: str) -> float:
    started = time.monotonic()
    assert httpx.get(f"{base_url}/v1/health", timeout=5).status_code == 200
    return time.monotonic() - started


def test_a_backtracking_pattern_cannot_stall_the_server(hostile: tuple[Any, FakeServer]) -> None:
    client, _ = hostile
    evil = _register(client, [r"(?:a|aa)*(b)"])  # exponential for a backtracking engine on "aaa…!"
    rows = [{"input_query": "q", "generated_answer": "REPLY-BACKTRACK " + "a" * 64 + "!"}]
    with ThreadPoolExecutor(max_workers=1) as pool:
        scoring = pool.submit(client.scoring.score, input_rows=rows, scoring_functions={evil: None})
        assert _health(_base_url(client)) < 2.0  # the event loop still answers meanwhile
        result = scoring.result(timeout=30).results[evil]
    (row,) = result.score_rows
    assert row["status"] == "parse_error" and row["error"] == "no verdict found in the judge output"
    with bad_request("pattern 0", "does not compile", "RE2 syntax"):
        _register(client, [r"(\d+)\1"])  # a backreference needs backtracking: refused, naming the pattern
    with bad_request("pattern 0", "lookaround"):
        client.scoring.score(
            input_rows=rows,
            scoring_functions={FUNCTION: {**PARAMS, "judge_score_regexes": [r"(?<=Rating: )(\d+)"]}},
        )


def test_a_reply_cut_off_by_the_token_limit_is_not_scored_from_its_example(hostile: tuple[Any, FakeServer]) -> None:
    client, _ = hostile
    rows = [
        {"input_query": "q", "generated_answer": "REPLY-TRUNCATED"},
        {"input_query": "q", "generated_answer": "a fine answer 4"},
    ]
    result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: None}).results[FUNCTION]
    cut, whole = result.score_rows
    assert cut["status"] == "parse_error" and cut["score"] is None and cut["finish_reason"] == "length"
    assert cut["error"].startswith("truncated") and cut["judge_feedback"] == TRUNCATED
    assert whole["status"] == "scored" and whole["finish_reason"] == "stop"
    assert result.aggregated_results["average"]["n_parse_error"] == 1


def test_an_extreme_verdict_is_a_parse_error_and_loses_no_other_row(hostile: tuple[Any, FakeServer]) -> None:
    client, _ = hostile
    unbounded = _register(client, [r"\[\[([-+.eE\d]+)\]\]"])  # a registered judge has no range of its own
    rows = [
        {"input_query": "q", "generated_answer": f"REPLY-HUGE {uuid.uuid4().hex}"},
        {"input_query": "q", "generated_answer": "an answer 6"},
    ]
    result = client.scoring.score(input_rows=rows, scoring_functions={unbounded: None}).results[unbounded]
    huge, fine = result.score_rows
    assert huge["status"] == "parse_error" and "beyond ±1e+06" in huge["error"]
    assert fine["score"] == 7.0 and result.aggregated_results["average"]["average"] == 7.0


def test_text_that_is_not_text(hostile: tuple[Any, FakeServer]) -> None:
    client, server = hostile
    asked = len(server.log)
    rows = [
        {"input_query": "q", "generated_answer": "fine"},
        {"input_query": "q", "generated_answer": "broken \ud800 text"},
    ]
    # The SDK cannot encode such text; JSON's "\ud800" escape carries it all the same.
    body = json.dumps({"input_rows": rows, "scoring_functions": {FUNCTION: None}})
    headers = {"Content-Type": "application/json"}
    refused = httpx.post(f"{_base_url(client)}/v1/scoring/score", content=body, headers=headers, timeout=30)
    assert refused.status_code == 400
    assert "row 1: column 'generated_answer' holds a lone surrogate" in refused.text, refused.text
    assert len(server.log) == asked  # refused before any judge call
    rows = [{"input_query": "q", "generated_answer": f"REPLY-SURROGATE {uuid.uuid4().hex}"}]
    for cached in (False, True):  # the reply is stored and read back as text
        result = client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: None}, extra_headers=DETAILS)
        (row,) = result.results[FUNCTION].score_rows
        assert row["score"] == 6.0 and row["judge_feedback"] == "an odd \ufffd byte. Rating: [[6]]"
        usage = result.results[FUNCTION].aggregated_results["usage"]
        assert (usage["cache_hits"], usage["replaced_characters"]) == ((1, 0) if cached else (0, 1))


@pytest.mark.parametrize(
    ("header", "fragments"),
    [
        ("[1, 2]", ("X-LlamaStack-Provider-Data header must hold a JSON object", "list")),
        ('"judge"', ("must hold a JSON object", "str")),
        ("7", ("must hold a JSON object", "int")),
        ('{"judge_options": [1]}', ("judge_options must be a JSON object",)),
        ('{"judge_options": {"seed": -1}}', ("seed",)),
        ('{"judge_options": {"group_by": ["category"]}}', ("row 0: missing group_by field 'category'",)),
    ],
)
def test_request_options_are_checked_before_any_work(
    hostile: tuple[Any, FakeServer], header: str, fragments: tuple[str, ...]
) -> None:
    client, server = hostile
    asked = len(server.log)
    rows = [{"input_query": "q", "generated_answer": f"answer {uuid.uuid4().hex} 1"}]
    with bad_request(*fragments):
        client.scoring.score(
            input_rows=rows,
            scoring_functions={FUNCTION: None},
            extra_headers={"X-LlamaStack-Provider-Data": header},
        )
    assert len(server.log) == asked
    assert client.scoring.score(input_rows=rows, scoring_functions={FUNCTION: None}).results[FUNCTION].score_rows


def test_an_eval_job_with_bad_options_is_refused_before_it_starts(hostile: tuple[Any, FakeServer]) -> None:
    client, server = hostile
    asked = len(server.log)
    benchmark_id = register_benchmark(client, [{"input_query": "q", "generated_answer": "x"}], [FUNCTION])
    config = {"eval_candidate": {"type": "model", "model": "endpoint/judge", "sampling_params": {"max_tokens": 8}}}
    with bad_request("seed"):
        client.alpha.eval.run_eval(
            benchmark_id,
            benchmark_config=config,
            extra_headers=JudgeOptions.model_construct(seed=-1).headers(),
        )
    assert len(server.log) == asked  # nothing generated, nothing judged
