"""An OpenAI-compatible judge for benchmarks: fixed latency per request, requests served concurrently.

Run: ``python benchmarks/fake_judge_server.py --port 8399 --latency 0.2``. It serves one model, ``judge``. Asked
for a rating it answers ``Rating: [[n]]`` with n from a hash of the prompt; asked for a pairwise verdict (an
MT-bench prompt that offers ``[[A]]``/``[[B]]``/``[[C]]``) it prefers the longer answer, as a verbosity-biased judge
would, and calls it a tie within 10 %. ``GET /stats`` reports requests served and the most in flight at once.
"""

import argparse
import asyncio
import hashlib
import re
import time
import uuid
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

_SIDES = {
    side: re.compile(
        rf"\[The Start of Assistant {side}'s Answer\]\n(.*?)\n\[The End of Assistant {side}'s Answer\]"
        rf"|### Assistant {side}:\n(.*?)(?:\n\n### User:|\n\n<\|The End)",
        re.S,
    )
    for side in "AB"
}


def verdict(prompt: str) -> str:
    """The fake judge's reply to one prompt."""
    if "[[A]]" not in prompt:
        rating = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 10 + 1
        return f"The answer is reasonable. Rating: [[{rating}]]"
    length = {side: sum(len(a or b) for a, b in pattern.findall(prompt)) for side, pattern in _SIDES.items()}
    if abs(length["A"] - length["B"]) <= 0.1 * max(length.values(), default=0):
        return "Both answers are about as good. [[C]]"
    return "Assistant A is more thorough. [[A]]" if length["A"] > length["B"] else "Assistant B is more thorough. [[B]]"


def build_app(latency_s: float) -> Starlette:
    """The app: /v1/models, /v1/chat/completions and /stats."""
    stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0}

    async def models(_: Request) -> JSONResponse:
        return JSONResponse(
            {"object": "list", "data": [{"id": "judge", "object": "model", "created": 0, "owned_by": "bench"}]}
        )

    async def chat(request: Request) -> JSONResponse:
        body: dict[str, Any] = await request.json()
        stats["requests"] += 1
        stats["in_flight"] += 1
        stats["max_in_flight"] = max(stats["max_in_flight"], stats["in_flight"])
        try:
            if latency_s:
                await asyncio.sleep(latency_s)
            prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
            text = verdict(prompt)
            return JSONResponse(
                {
                    "id": f"bench-{uuid.uuid4().hex}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "judge"),
                    "choices": [
                        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                    ],
                    "usage": {
                        "prompt_tokens": len(prompt.split()),
                        "completion_tokens": 6,
                        "total_tokens": len(prompt.split()) + 6,
                    },
                }
            )
        finally:
            stats["in_flight"] -= 1

    async def report(_: Request) -> JSONResponse:
        return JSONResponse(stats)

    async def reset(_: Request) -> JSONResponse:
        stats.update(requests=0, max_in_flight=0)
        return JSONResponse(stats)

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/stats", report),
            Route("/stats/reset", reset, methods=["POST"]),
        ]
    )


def main() -> None:
    """Serve until killed."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each reply")
    args = parser.parse_args()
    uvicorn.run(build_app(args.latency), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
