"""``certify`` through the stack: a judge that always prefers the longer answer is shown to be measuring length."""

import json
import re
from pathlib import Path
from typing import Any

import pytest

from llama_stack_judge.core.agreement import keyed_vote
from llama_stack_judge.core.card import headline
from llama_stack_judge.core.jsonl import read_jsonl
from llama_stack_judge.mtbench.benchmark import register_certification
from llama_stack_judge.mtbench.questions import data_file
from llama_stack_judge.mtbench.work import answer_files
from tests.fake_openai import fake_openai
from tests.integration.test_cli import _run
from tests.stacks import (
    DETAILS,
    SHORT_LEASES,
    Backends,
    bad_request,
    count_rows,
    run_config_file,
    served_client,
    start_server,
    wait_for_job,
    with_endpoint,
    with_eval_config,
)

pytestmark = pytest.mark.integration
RESULTS = "llama_stack_judge_eval_results"
QUESTIONS = (81, 83, 85)


def _between(text: str, start: str, end: str) -> str | None:
    found = re.search(re.escape(start) + r"\n(.*?)\n" + re.escape(end), text, re.S)
    return found.group(1) if found else None


def _length_judge(messages: list[dict[str, Any]]) -> str:
    """Pairwise: the longer answer wins (a tie when equal). Single: one point per 150 characters, at most 10."""
    text = messages[-1]["content"]
    a = _between(text, "[The Start of Assistant A's Answer]", "[The End of Assistant A's Answer]")
    b = _between(text, "[The Start of Assistant B's Answer]", "[The End of Assistant B's Answer]")
    if a is not None and b is not None:
        return "[[A]]" if len(a) > len(b) else "[[B]]" if len(b) > len(a) else "[[C]]"
    answer = _between(text, "[The Start of Assistant's Answer]", "[The End of Assistant's Answer]") or ""
    return f"Rating: [[{min(10, len(answer) // 150 + 1)}]]"


def _certify(tmp_path: Path, kind: str, url: str, *extra: str) -> tuple[Any, dict[str, Any]]:
    output = tmp_path / kind
    done = _run(
        "certify", kind, "--question-ids", ",".join(map(str, QUESTIONS)), "--output", str(output),
        "--inference-url", url, "--judge-model", "judge", "--state-dir", str(tmp_path / "state"), *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done, json.loads((output / "card.json").read_text())


def test_a_length_judge_agrees_exactly_as_the_longer_answer_rule(tmp_path: Path) -> None:
    dev = data_file("dev")
    votes = read_jsonl(dev / "human_judgments_dev.jsonl") + read_jsonl(dev / "gpt4_pair_judgments_dev.jsonl")
    keys = {keyed_vote(v, where="")[0] for v in votes if v["question_id"] in QUESTIONS and v["turn"] == 1}
    with fake_openai("judge", _length_judge) as server:
        done, card = _certify(tmp_path, "pairwise", server.url)
    assert card["kind"] == "pairwise" and card["n_judgments"] == len(keys) and card["complete"]
    assert len(server.log) == 2 * len(keys)  # every labelled pair, in both orders
    for source in ("experts", "authors", "gpt4"):
        judge = card["agreement"][source]["turn_1"]
        rule = card["length_bias"]["longer_answer_rule"][source]["turn_1"]
        assert judge["with_ties"]["value"] == rule["with_ties"]["value"]
        assert judge["without_ties"] == rule["without_ties"] and judge["without_ties"]["n"] > 0
    assert card["length_bias"]["judge_picks_longer"]["value"] == 1.0
    assert card["position"]["consistency"]["value"] == 1.0
    assert card["failures"] == {"parse_error_rate": 0.0, "inference_error_rate": 0.0, "n": len(keys)}
    experts = card["agreement"]["experts"]["turn_1"]
    low, high = experts["kappa"]["ci95"]
    assert low <= experts["kappa"]["value"] <= high
    assert done.stdout.startswith("this judge: agreement ") and "vs experts (turn 1, " in done.stdout
    assert card["run"]["judges"]["judge::mt-bench-pair-v2"]["judge_model"] == "endpoint/judge"


def test_a_rating_judge_gets_correlations_with_the_reference_ratings(tmp_path: Path) -> None:
    with fake_openai("judge", _length_judge) as server:
        done, card = _certify(tmp_path, "single", server.url)
    answers = 7 * len(QUESTIONS)  # seven models' turn-1 answers
    assert card["kind"] == "rating" and card["n_judgments"] == answers == len(server.log)
    reference = card["reference"]  # GPT-4 rated six of them (not vicuna-13b-v1.2) in the shipped labels
    assert reference["spearman"]["n"] == 6 * len(QUESTIONS) and -1 <= reference["spearman"]["value"] <= 1
    assert reference["model_ranking_spearman"]["models"] == 6
    assert card["length_bias"]["rating_per_1000_chars"] > 0  # it rates by length, and the card shows it
    speed = card["speed"]
    assert speed["inference_calls"] == answers and speed["cache_hits"] == 0
    assert speed["seconds_per_judgment"] == pytest.approx(speed["seconds_per_inference_call"])
    assert "Spearman" in done.stdout


def test_a_filed_card_is_shown_by_runs_of_the_same_judge_and_listed(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    dev_answers = [str(data_file("dev") / "answers" / f"{model}.jsonl") for model in ("gpt-4", "llama-13b")]

    def run_mt_bench(url: str, model: str, output: str) -> Any:
        done = _run(
            "mt-bench", "single", "--answers", *dev_answers, "--question-ids", "81", "--turns", "1",
            "--output", str(tmp_path / output), "--inference-url", url, "--judge-model", model, "--state-dir", state,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    with fake_openai(["judge", "other"], _length_judge) as server:
        before = run_mt_bench(server.url, "judge", "before")
        _, card = _certify(tmp_path, "single", server.url)
        same = run_mt_bench(server.url, "judge", "same")
        other = run_mt_bench(server.url, "other", "other")
    assert "this judge has no card yet: `llama-stack-judge certify single`" in before.stdout
    shown = json.loads((tmp_path / "same" / "summary.json").read_text())["card"]
    assert shown["n_judgments"] == card["n_judgments"] and shown["labels"] == "mt-bench-dev"
    assert "this judge: agreement" in same.stdout and "vs reference ratings" in same.stdout
    assert f"[mt-bench-dev, {card['n_judgments']} judgments, certified " in same.stdout  # printed as text
    assert shown["headline"] in (tmp_path / "same" / "report.html").read_text()
    assert "no card yet" in other.stdout  # another model is another judge
    listed = _run("cards", "--state-dir", state)
    assert listed.returncode == 0 and "endpoint/judge" in listed.stdout and "mt-bench-dev" in listed.stdout


def _endpoint_stack(tmp_path: Path, url: str, backends: Backends = None) -> Path:
    return run_config_file(tmp_path / "stack", with_endpoint(url), backends=backends)


def _candidate(model: str) -> dict[str, Any]:
    return {"eval_candidate": {"type": "model", "model": model, "sampling_params": {}}}


def test_a_served_stack_certifies_a_judge_files_its_card_and_shows_it_to_later_calls(
    tmp_path: Path, storage: Backends
) -> None:
    """Certification as an eval benchmark through the SDK; the card lives in the stack's SQL store across restarts."""
    function = "judge::response_assessment.pairwise_comparison"
    pair = {"question": ["Q"], "response_a": ["a short answer"], "response_b": ["a longer answer than a"]}
    with fake_openai(["judge", "other"], _length_judge) as server:
        run_yaml = _endpoint_stack(tmp_path, server.url, storage)
        with served_client(run_yaml) as client:
            benchmark_id = register_certification(client, "pairwise", question_ids=QUESTIONS, voted_by="experts")
            job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=_candidate("endpoint/judge"))
            assert wait_for_job(client, benchmark_id, job.job_id, {"completed", "failed"}) == "completed"
            result = client.alpha.eval.jobs.retrieve(job.job_id, benchmark_id=benchmark_id)
            shown = client.scoring.score(
                input_rows=[pair], scoring_functions={function: _judge("endpoint/judge")}, extra_headers=DETAILS
            )
            other = client.scoring.score(
                input_rows=[pair], scoring_functions={function: _judge("endpoint/other")}, extra_headers=DETAILS
            )
        with served_client(run_yaml) as client:  # a restart: the card is read back from the store
            again = client.scoring.score(
                input_rows=[pair], scoring_functions={function: _judge("endpoint/judge")}, extra_headers=DETAILS
            )
        answers = [str(data_file("dev") / "answers" / f"{model}.jsonl") for model in ("gpt-4", "llama-13b")]
        shown_by_cli = _run(
            "mt-bench", "pairwise", "--answers", *answers, "--question-ids", "81", "--turns", "1",
            "--stack-config", str(run_yaml), "--judge-model", "endpoint/judge", "--output", str(tmp_path / "cli"),
            "--state-dir", str(tmp_path / "cli-state"),
        )  # fmt: skip
        _, cli_card = _certify(tmp_path, "pairwise", server.url, "--voted-by", "experts")
    card = result.scores[function].aggregated_results["certification"]
    expert_keys = {
        keyed_vote(v, where="")[0]
        for v in read_jsonl(data_file("dev") / "human_judgments_dev.jsonl")
        if v["question_id"] in QUESTIONS and v["turn"] == 1 and v["judge"].startswith("expert")
    }
    assert card["n_judgments"] == len(expert_keys) == len(result.generations) and card["complete"]
    assert {(g["turn"], g["question_id"], g["model_a"], g["model_b"]) for g in result.generations} == expert_keys
    for source in ("experts", "authors", "gpt4"):  # a length judge agrees exactly as the longer-answer rule
        judge, rule = card["agreement"][source]["turn_1"], card["length_bias"]["longer_answer_rule"][source]["turn_1"]
        assert (
            judge["with_ties"]["value"] == rule["with_ties"]["value"] and judge["without_ties"] == rule["without_ties"]
        )
    assert card["length_bias"]["judge_picks_longer"]["value"] == 1.0
    assert card["run"]["judges"]["judge::mt-bench-pair-v2"]["judge_model"] == "endpoint/judge"
    assert card["speed"]["inference_calls"] == 2 * len(expert_keys)
    # The command line's certify of the same judge on the same pairs makes the same card.
    for part in ("agreement", "length_bias", "position", "failures"):
        assert card[part] == cli_card[part], part
    for response in (shown, again):
        summary = response.results[function].aggregated_results["judge_card"]
        assert summary["headline"] == headline(card) and summary["card_id"] == card["card_id"]
        assert summary["n_judgments"] == card["n_judgments"] and not summary["shipped"]
    assert "judge_card" not in other.results[function].aggregated_results  # another model is another judge
    assert shown_by_cli.returncode == 0, shown_by_cli.stderr  # the command line shows a card filed in the stack
    assert headline(card) in shown_by_cli.stdout.replace("\n", " ")
    listed = _run("cards", "--stack-config", str(run_yaml))
    assert listed.returncode == 0, listed.stderr
    assert "endpoint/judge" in listed.stdout and card["card_id"][:12] in listed.stdout


def _judge(model: str) -> dict[str, Any]:
    return {"type": "llm_as_judge", "judge_model": model}


def test_certification_rows_in_the_request_and_refusals(tmp_path: Path) -> None:
    function = "judge::response_assessment.rating"
    with (
        fake_openai(["judge"], _length_judge) as server,
        served_client(_endpoint_stack(tmp_path, server.url)) as client,
    ):
        benchmark_id = register_certification(client, "single", question_ids=[81], benchmark_id="certify-81")
        rows = [{"question_id": 81, "model": model, "turn": 1} for model in ("gpt-4", "llama-13b", "alpaca-13b")]
        result = client.alpha.eval.evaluate_rows(
            benchmark_id, input_rows=rows, scoring_functions=[function], benchmark_config=_candidate("endpoint/judge")
        )
        with bad_request("row 1", "no-such-model"):
            client.alpha.eval.evaluate_rows(
                benchmark_id,
                input_rows=[rows[0], {"question_id": 81, "model": "no-such-model", "turn": 1}],
                scoring_functions=[function],
                benchmark_config=_candidate("endpoint/judge"),
            )
        with bad_request("judge certified is the eval candidate"):
            client.alpha.eval.evaluate_rows(
                benchmark_id,
                input_rows=rows,
                scoring_functions=[function],
                benchmark_config=_candidate("endpoint/judge")
                | {"scoring_params": {function: _judge("scripted/judge")}},
            )
        with bad_request("judge certified is the eval candidate"):  # refused before a job exists
            client.alpha.eval.run_eval(
                benchmark_id,
                benchmark_config=_candidate("endpoint/judge") | {"scoring_params": {function: _judge("other")}},
            )
        client.beta.datasets.register(purpose="eval/messages-answer", source={"type": "rows", "rows": rows})
        with bad_request("metadata.certification", "kind 'single' or 'pairwise'"):
            client.alpha.benchmarks.register(
                benchmark_id="bad-certification",
                dataset_id="certify-81-answers",
                scoring_functions=[function],
                provider_id="judge-eval",
                metadata={"certification": {"kind": "ratings"}},
            )
    card = result.scores[function].aggregated_results["certification"]
    assert [g["model"] for g in result.generations] == ["gpt-4", "llama-13b", "alpaca-13b"]
    assert [row["score"] for row in result.scores[function].score_rows] == [
        min(10, len(answer_files([str(data_file("dev") / "answers" / f"{m}.jsonl")])[m][81][0]) // 150 + 1)
        for m in ("gpt-4", "llama-13b", "alpaca-13b")
    ]  # the length judge's ratings of the shipped answers: the rows were filled in from the package's data
    assert card["kind"] == "rating" and card["n_judgments"] == 3 and card["reference"]["spearman"]["n"] == 3


def test_a_certification_killed_midway_resumes_and_judges_no_answer_twice(tmp_path: Path, storage: Backends) -> None:
    from tests.fake_openai import Fault
    from tests.integration.test_jobs import _kill_once, _restart_and_finish

    def slow_length_judge(messages: list[dict[str, Any]]) -> Fault:
        return Fault(delay_s=0.2, then=_length_judge(messages))

    state = tmp_path / "stack"
    with fake_openai("judge", slow_length_judge) as judge:
        providers = with_eval_config(with_endpoint(judge.url), page_rows=4, **SHORT_LEASES)
        providers["scoring"][0]["config"] |= {"max_concurrency": 2}
        run_yaml = run_config_file(state, providers, backends=storage)
        process, client = start_server(run_yaml)
        try:
            benchmark_id = register_certification(client, "single", question_ids=[81, 91])  # 14 answers
            job = client.alpha.eval.run_eval(benchmark_id, benchmark_config=_candidate("endpoint/judge"))
            _kill_once(process, lambda: count_rows(state, storage, RESULTS, job.job_id) >= 4)
        finally:
            if process.poll() is None:
                process.kill()
        judged_before = count_rows(state, storage, RESULTS, job.job_id)
        assert 4 <= judged_before < 14
        result = _restart_and_finish(run_yaml, benchmark_id, job.job_id)
    prompts = [json.dumps(request["messages"]) for request in judge.log]
    assert len(set(prompts)) == 14 and len(prompts) <= 14 + 2  # at most the calls in flight at the kill, again
    card = result.scores["judge::response_assessment.rating"].aggregated_results["certification"]
    assert card["n_judgments"] == 14 == len(result.generations) and card["card_id"]
    assert card["reference"]["spearman"]["n"] == 12  # GPT-4 rated six of the seven models
