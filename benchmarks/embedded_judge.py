"""The embedded judge on MT-bench answers: speed, parseable verdicts with and without a grammar, model ranking.

One managed llama.cpp server runs the packaged model; each mode judges the same turn-1 answers of the four shared
models through an in-process stack (``remote::llama-cpp-server``), one row per score call so every judgment is
timed on its own. Modes: ``free`` (the MT-bench prompt, verdict read by the patterns), ``grammar`` (free
explanation, then a grammar-forced ``[[n]]``), ``json`` (a grammar-forced JSON object: explanation, verdict).
Then the same requests of a few rows are sent straight to the llama.cpp server, to price the stack's path.

Run: ``LLAMA_STACK_LOG_FORMAT=json .venv/bin/python benchmarks/embedded_judge.py [--per-category 1]``
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from llama_stack_judge.core.options import JudgeOptions
from llama_stack_judge.core.runner import render_request
from llama_stack_judge.embedded import embedded_providers, embedded_server
from llama_stack_judge.embedded.models import DEFAULT_MODEL
from llama_stack_judge.mtbench.questions import data_file, load_questions, load_turn_answers
from llama_stack_judge.mtbench.routing import rating_inputs
from llama_stack_judge.mtbench.tasks import RATING_TASK
from llama_stack_judge.names import PREFIX
from llama_stack_judge.scoring.functions import ScoringFunctionRegistry
from llama_stack_judge.stack_config import build_run_config, write_run_config

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED_ORDER = ("gpt-4", "gpt-3.5-turbo", "vicuna-13b-v1.3", "alpaca-13b")  # MT-bench paper, GPT-4 judge
MODES = {
    "free": {"verdict_grammar": False, "structured_output": False},
    "grammar": {"verdict_grammar": True, "structured_output": False},
    "json": {"verdict_grammar": True, "structured_output": True},
}
FUNCTION_ID = f"{PREFIX}::{RATING_TASK}"


def sample_rows(per_category: int, models: tuple[str, ...]) -> list[tuple[str, dict[str, Any]]]:
    """(model, row) for the first ``per_category`` questions of each category, turn 1, every model."""
    questions = sorted(load_questions(data_file("question.jsonl")).values(), key=lambda q: q.question_id)
    references = load_turn_answers(data_file("reference_answer_gpt-4.jsonl"))
    taken: dict[str, int] = {}
    chosen = []
    for question in questions:
        if taken.get(question.category, 0) < per_category:
            taken[question.category] = taken.get(question.category, 0) + 1
            chosen.append(question)
    rows = []
    for model in models:
        answers = load_turn_answers(ROOT / "examples" / "mtbench" / f"{model}.jsonl")
        for question in chosen:
            row = {"question": [question.turns[0]], "response": [answers[question.question_id][0]], "turn": 1}
            row["category"] = question.category
            if question.question_id in references:
                row["reference"] = [references[question.question_id][0]]
            rows.append((model, row))
    return rows


def judge_mode(client: Any, rows: list[tuple[str, dict[str, Any]]], mode: str) -> dict[str, Any]:
    """Judge every row with one mode's options; latencies, tokens, outcomes and mean score per model."""
    options = JudgeOptions(use_cache=False, bootstrap_resamples=0, details=True, **MODES[mode])
    latencies, scores, outcomes = [], {}, {"scored": 0, "parse_error": 0, "inference_error": 0}
    prompt_tokens = completion_tokens = 0
    for index, (model, row) in enumerate(rows):
        started = time.perf_counter()
        result = client.scoring.score(
            input_rows=[row], scoring_functions={FUNCTION_ID: None}, extra_headers=options.headers()
        ).results[FUNCTION_ID]
        latencies.append(time.perf_counter() - started)
        scored = result.score_rows[0]
        outcomes[scored["status"]] += 1
        usage = result.aggregated_results.get("usage", {})
        prompt_tokens += usage.get("prompt_tokens", 0)
        completion_tokens += usage.get("completion_tokens", 0)
        if scored["status"] == "scored":
            scores.setdefault(model, []).append(scored["score"])
        print(f"  {mode} {index + 1}/{len(rows)} {model}: {scored['status']} {scored.get('score')}", file=sys.stderr)
    means = {model: statistics.fmean(values) for model, values in scores.items()}
    return {
        "mode": mode,
        "n": len(rows),
        **outcomes,
        "mean_s": statistics.fmean(latencies),
        "p90_s": statistics.quantiles(latencies, n=10)[-1],
        "completion_tokens_per_s": completion_tokens / sum(latencies),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "means": means,
        "ranking": sorted(means, key=means.__getitem__, reverse=True),
    }


def direct_vs_stack(
    client: Any, base_url: str, rows: list[tuple[str, dict[str, Any]]], model: str
) -> tuple[float, float]:
    """Seconds for the same requests straight to the llama.cpp server and through the stack (no cache)."""
    task = ScoringFunctionRegistry([]).get(FUNCTION_ID)
    requests = []
    for _, row in rows:
        (_turn, name, fields), *_ = rating_inputs(row, where="bench")
        definition = JudgeOptions(**MODES["grammar"]).apply(task.judges[name])  # type: ignore[union-attr]
        requests.append(render_request(definition, fields, judge_model=model))
    started = time.perf_counter()
    with httpx.Client(timeout=600) as http:
        for request in requests:
            body = {
                "model": model,
                "messages": [{"role": m.role, "content": m.content} for m in request.messages],
                "temperature": request.temperature,
                "max_tokens": request.max_tokens,
                "grammar": request.grammar,
            }
            http.post(f"{base_url}/chat/completions", json=body).raise_for_status()
    direct = time.perf_counter() - started
    started = time.perf_counter()
    judge_mode(client, rows, "grammar")
    return direct, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-category", type=int, default=1, help="turn-1 questions per category (8 categories)")
    parser.add_argument("--modes", default="free,grammar,json")
    parser.add_argument("--overhead-rows", type=int, default=6, help="rows for the direct-vs-stack comparison")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--output", help="write the figures as JSON")
    args = parser.parse_args()
    from llama_stack.core.library_client import LlamaStackAsLibraryClient

    rows = sample_rows(args.per_category, PUBLISHED_ORDER)
    started = time.perf_counter()
    with embedded_server(args.model) as server, tempfile.TemporaryDirectory() as state:
        print(f"server ready in {time.perf_counter() - started:.1f} s (model check included)", file=sys.stderr)
        config = build_run_config(embedded_providers(server.base_url, args.model), state_dir=state)
        with contextlib.redirect_stdout(sys.stderr):
            client = LlamaStackAsLibraryClient(str(write_run_config(config, Path(state) / "run.yaml")))
        with client:
            results = [judge_mode(client, rows, mode) for mode in args.modes.split(",")]
            subset = rows[: args.overhead_rows]
            direct, stacked = direct_vs_stack(client, server.base_url, subset, args.model)
    print(f"\n{len(rows)} turn-1 judgments per mode ({args.per_category}/category x 8 categories x 4 models), "
          f"judge {args.model}, 2 cores")  # fmt: skip
    published = " > ".join(PUBLISHED_ORDER)
    print(f"{'mode':8} {'parsed':>8} {'mean s':>7} {'p90 s':>7} {'tok/s':>6}  ranking (published: {published})")
    for r in results:
        same = "same" if tuple(r["ranking"]) == PUBLISHED_ORDER else "differs"
        means = ", ".join(f"{m} {r['means'][m]:.2f}" for m in r["ranking"])
        print(f"{r['mode']:8} {r['scored']:>3}/{r['n']:<4} {r['mean_s']:7.1f} {r['p90_s']:7.1f} "
              f"{r['completion_tokens_per_s']:6.1f}  {same}: {means}")  # fmt: skip
    print(f"stack path vs direct llama.cpp calls ({len(subset)} rows, grammar mode): direct {direct:.1f} s, "
          f"stack {stacked:.1f} s, overhead {100 * (stacked / direct - 1):+.1f} %")  # fmt: skip
    if args.output:
        Path(args.output).write_text(json.dumps({"modes": results, "direct_s": direct, "stack_s": stacked}, indent=2))


if __name__ == "__main__":
    main()
