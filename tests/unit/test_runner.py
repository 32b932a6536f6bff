import asyncio

import pytest

from llama_stack_judge.core.aggregate import aggregate
from llama_stack_judge.core.cache import cache_key
from llama_stack_judge.core.chat import ChatReply, ChatRequest, TransientChatError
from llama_stack_judge.core.definitions import Aggregation, JudgeDefinition, validate_definition
from llama_stack_judge.core.outcomes import Outcome, RowResult
from llama_stack_judge.core.rows import Row
from llama_stack_judge.core.runner import Judge, RunSettings, render_request
from llama_stack_judge.errors import JudgeInputError

JUDGE = validate_definition(
    {
        "identifier": "t::judge",
        "system_prompt": "You judge.",
        "prompt_template": "Answer: {answer}",
        "verdict": {"type": "rating", "min": 1, "max": 10},
    },
    source="test",
)
FAST = RunSettings(max_concurrency=4, max_retries=2, timeout_s=1.0, backoff_base_s=0.001, backoff_max_s=0.002)


async def judge_rows(
    definition: JudgeDefinition, rows: list[Row], chat: "ScriptedChat", *, judge_model: str, settings: RunSettings
) -> list[RowResult]:
    return await Judge(chat, settings).judge_rows(definition, rows, judge_model=judge_model)


class ScriptedChat:
    """Replies ``Rating: [[n]]`` where the answer is ``n``; records concurrency and calls."""

    def __init__(self, *, delay: float = 0.0, failures: dict[str, list[Exception]] | None = None) -> None:
        self.delay = delay
        self.failures = failures or {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.requests: list[ChatRequest] = []

    async def __call__(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            answer = request.messages[-1].content.removeprefix("Answer: ")
            pending = self.failures.get(answer)
            if pending:
                raise pending.pop(0)
            # Later rows answer sooner, so completion order differs from input order.
            await asyncio.sleep(self.delay / (1 + len(self.requests)))
            return ChatReply(text=f"Rating: [[{answer}]]")
        finally:
            self.in_flight -= 1


async def test_results_keep_input_order_under_bounded_concurrency() -> None:
    chat = ScriptedChat(delay=0.05)
    rows = [{"answer": str(n % 10 + 1)} for n in range(20)]
    results = await judge_rows(JUDGE, rows, chat, judge_model="m", settings=FAST)
    assert [r.score for r in results] == [float(n % 10 + 1) for n in range(20)]
    assert chat.max_in_flight == 4


async def test_messages_and_sampling_are_rendered() -> None:
    chat = ScriptedChat()
    await judge_rows(JUDGE, [{"answer": "7 {braces} kept"}], chat, judge_model="judge-model", settings=FAST)
    (request,) = chat.requests
    assert request.model == "judge-model" and request.temperature == 0.0 and request.max_tokens == 1024
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "You judge."),
        ("user", "Answer: 7 {braces} kept"),
    ]


async def test_null_sampling_is_left_to_the_server_and_keyed_apart() -> None:
    chat = ScriptedChat()
    server_default = JUDGE.with_changes(sampling={"temperature": None, "max_tokens": None}, num_samples=2)
    await judge_rows(server_default, [{"answer": "7"}], chat, judge_model="m", settings=FAST)
    assert {(r.temperature, r.max_tokens) for r in chat.requests} == {(None, None)}
    greedy = render_request(JUDGE, {"answer": "7"}, judge_model="m")
    assert cache_key(chat.requests[0], 0) != cache_key(greedy, 0)
    truncated = server_default.parse_verdict("Rating: [[", truncated=True).error or ""
    assert "the server's own limit" in truncated


async def test_transient_failures_are_retried_then_scored() -> None:
    chat = ScriptedChat(failures={"5": [TransientChatError("HTTP 500"), TransientChatError("HTTP 429")]})
    (result,) = await judge_rows(JUDGE, [{"answer": "5"}], chat, judge_model="m", settings=FAST)
    assert result.outcome is Outcome.scored and result.score == 5.0 and result.attempts == 3


async def test_spent_retries_and_permanent_failures_are_inference_errors() -> None:
    chat = ScriptedChat(failures={"5": [TransientChatError("HTTP 503")] * 3, "6": [RuntimeError("bad request")]})
    results = await judge_rows(
        JUDGE, [{"answer": "5"}, {"answer": "6"}, {"answer": "7"}], chat, judge_model="m", settings=FAST
    )
    assert [r.outcome for r in results] == [Outcome.inference_error, Outcome.inference_error, Outcome.scored]
    assert results[0].attempts == 3 and "HTTP 503" in (results[0].error or "")
    assert results[1].attempts == 1 and results[1].error == "RuntimeError: bad request"


async def test_timeouts_are_retried_and_reported() -> None:
    chat = ScriptedChat(delay=10.0)
    settings = RunSettings(max_concurrency=2, max_retries=1, timeout_s=0.05, backoff_base_s=0.001)
    (result,) = await judge_rows(JUDGE, [{"answer": "3"}], chat, judge_model="m", settings=settings)
    assert result.outcome is Outcome.inference_error and result.attempts == 2 and "timed out" in (result.error or "")


async def test_parse_errors_keep_the_output() -> None:
    chat = ScriptedChat()
    results = await judge_rows(JUDGE, [{"answer": "11"}, {"answer": "x"}], chat, judge_model="m", settings=FAST)
    assert [r.outcome for r in results] == [Outcome.parse_error, Outcome.parse_error]
    assert results[0].judge_output == "Rating: [[11]]" and "outside" in (results[0].error or "")


async def test_bad_rows_fail_before_any_call() -> None:
    chat = ScriptedChat()
    with pytest.raises(JudgeInputError, match=r"row 1: missing column 'answer'.*row 2: column 'answer' must be text"):
        await judge_rows(JUDGE, [{"answer": "1"}, {}, {"answer": 3}], chat, judge_model="m", settings=FAST)
    with pytest.raises(JudgeInputError, match="no rows"):
        await judge_rows(JUDGE, [], chat, judge_model="m", settings=FAST)
    assert chat.requests == []


@pytest.mark.parametrize("field", ["max_concurrency", "max_retries", "timeout_s"])
def test_settings_are_validated(field: str) -> None:
    with pytest.raises(JudgeInputError, match=field):
        RunSettings(**{field: -1})


def test_aggregates_count_failures_and_never_divide_by_zero() -> None:
    failed = [RowResult(Outcome.parse_error), RowResult(Outcome.inference_error)]
    everything = list(Aggregation)
    assert aggregate(failed, everything) == {
        "average": {"average": None, "ci95": None},
        "median": {"median": None},
        "accuracy": {"accuracy": None, "num_correct": 0, "num_total": 0},
        "categorical_count": {"categorical_count": {}},
        "win_rate": {"win_rate": None, "wins": 0, "losses": 0, "ties": 0, "ci95": None},
        "position_bias": {"position_consistency": None, "first_position_win_rate": None, "n_pairs_both_orders": 0},
        "turn_average": {"turn_average": {"None": {"average": None, "n": 0, "n_total": 2}}},
        "n_scored": 0,
        "n_parse_error": 1,
        "n_inference_error": 1,
        "n_total": 2,
    }
    mixed = [RowResult.scored_value(2.0, verdict="2"), RowResult.scored_value(9.0, verdict="9"), *failed]
    result = aggregate(mixed, [Aggregation.average, Aggregation.median, Aggregation.categorical_count])
    assert result["average"]["average"] == 5.5 and result["median"] == {"median": 5.5}  # type: ignore[index]
    assert result["categorical_count"] == {"categorical_count": {"2": 1, "9": 1}}
    assert result["n_scored"] == 2 and result["n_total"] == 4
