"""Filing judge cards and finding them again by what decides a verdict."""

from pathlib import Path
from typing import Any

from llama_stack_judge.cardbook import CardBook, best_card, card_key, card_summary, card_turns

JUDGE = {
    "judge_model": "embedded/qwen",
    "content_hash": "ab" * 32,
    "verdict_mode": "grammar+json",
    "verdict_weighting": "sampled",
    "sampling": {"temperature": 0.0, "max_tokens": 2048, "top_p": None},
}


def _card(judges: dict[str, Any], *, n: int, date: str) -> dict[str, Any]:
    return {
        "kind": "rating",
        "labels": "mt-bench-dev",
        "n_judgments": n,
        "agreement": {},
        "reference": {"spearman": {"value": 0.5, "ci95": [0.3, 0.7], "n": n}},
        "run": {"judges": judges, "date": date},
    }


def test_the_key_is_the_judges_model_and_definition_hash_not_their_names() -> None:
    assert card_key({"a::x": JUDGE}) == card_key({"b::y": JUDGE})
    for field, other in (("judge_model", "other"), ("content_hash", "cd" * 32)):
        assert card_key({"a::x": JUDGE}) != card_key({"a::x": JUDGE | {field: other}})
    # Mode, weighting and sampling are in the definition hash (a weighted judge has another hash, see test_logprobs).
    assert card_key({"a::x": JUDGE}) == card_key({"a::x": JUDGE | {"verdict_mode": "shown, not keyed"}})


def test_the_largest_card_of_a_key_is_found_and_bad_files_are_skipped(tmp_path: Path) -> None:
    book = CardBook(tmp_path / "cards")
    assert book.find({"a::x": JUDGE}) is None and book.cards() == []
    book.save(_card({"a::x": JUDGE}, n=56, date="2026-12-01T10:00:00+00:00"))
    book.save(_card({"a::x": JUDGE}, n=8, date="2026-12-02T10:00:00+00:00"))  # newer but smaller
    book.save(_card({"a::x": JUDGE | {"judge_model": "other"}}, n=500, date="2026-12-02T11:00:00+00:00"))
    (tmp_path / "cards" / "broken.json").write_text("{not json")
    found = book.find({"renamed::x": JUDGE})
    assert found is not None and found["n_judgments"] == 56
    assert [card["n_judgments"] for card in book.cards()] == [500, 8, 56]  # newest first
    summary = card_summary(book.find({"a::x": JUDGE}))
    assert (
        summary is not None
        and summary["headline"] == "this judge: Spearman 0.50 [0.30, 0.70] vs reference ratings (56 answers)"
    )
    assert summary["path"].endswith(".json") and not summary["shipped"]
    assert card_summary(None) is None


def test_shipped_cards_are_found_listed_and_never_written(tmp_path: Path) -> None:
    shipped = CardBook(tmp_path / "shipped")
    shipped.save(_card({"a::x": JUDGE}, n=112, date="2026-12-03T07:00:00+00:00"))
    book = CardBook(tmp_path / "mine", shipped=tmp_path / "shipped")
    found = book.find({"a::x": JUDGE})
    assert found is not None and found["shipped"] is True and found["n_judgments"] == 112
    mine = book.save(_card({"a::x": JUDGE}, n=8, date="2026-12-03T08:00:00+00:00"))
    assert mine.parent == tmp_path / "mine" and len(list((tmp_path / "shipped").iterdir())) == 1
    assert [card["shipped"] for card in book.cards()] == [False, True]
    assert book.find({"a::x": JUDGE})["n_judgments"] == 112  # type: ignore[index]


def test_the_shipped_cards_are_the_default_embedded_judges_on_its_server() -> None:
    """Fails when a shipped MT-bench definition, the embedded judge's options or its server change: re-measure and
    re-ship (a card measured on another server would describe other verdicts)."""
    from llama_stack_judge.cardbook import SHIPPED_CARDS
    from llama_stack_judge.core.definitions import load_definitions
    from llama_stack_judge.core.options import JudgeOptions
    from llama_stack_judge.embedded import EMBEDDED_JUDGE_OPTIONS, EMBEDDED_PROVIDER_ID
    from llama_stack_judge.embedded.llama_server import RUNTIME
    from llama_stack_judge.embedded.models import DEFAULT_MODEL
    from llama_stack_judge.scoring.functions import SHIPPED_DEFINITIONS

    options = JudgeOptions(**EMBEDDED_JUDGE_OPTIONS)
    model = f"{EMBEDDED_PROVIDER_ID}/{DEFAULT_MODEL}"
    shipped = [d for directory in SHIPPED_DEFINITIONS for d in load_definitions(directory, prefix="judge")]
    book = CardBook(Path("/nonexistent"), shipped=SHIPPED_CARDS)
    assert book.cards() and all(card["run"]["judge_source"].endswith(f" on {RUNTIME}") for card in book.cards())
    # kind, the run's size on first turns (the 40 dev questions; the 8 first ones' pairs experts voted on) and on
    # second turns (the multi-turn judges: the 16 first dev questions of each category pair; the 8 questions' pairs)
    for kind, judgments, second_turns in (("single", 280, 112), ("pair", 75, 74)):
        judges = {
            d.identifier: options.apply(d).provenance(model) for d in shipped if f"mt-bench-{kind}" in d.identifier
        }
        assert len(judges) == 4
        card = book.find(judges, turns=(1,))
        assert card is not None and card["shipped"] and card["labels"] == "mt-bench-dev", kind
        assert card["n_judgments"] == judgments and card_turns(card) == [1]
        assert " --judge-options" not in card["run"]["command"] and "--verdict-weighting" not in card["run"]["command"]
        assert all(judge["verdict_weighting"] == "expected" for judge in card["run"]["judges"].values())
        second = book.find(judges, turns=(2,))
        assert second is not None and second["n_judgments"] == second_turns and card_turns(second) == [2], kind


def test_a_card_of_the_runs_turns_is_shown_before_a_larger_one_of_other_turns() -> None:
    first = {"n_judgments": 112, "run": {"date": "2026-12-03T07:00:00+00:00", "selection": {"turns": [1]}}}
    both = {"n_judgments": 224, "run": {"date": "2026-12-03T09:00:00+00:00", "selection": {"turns": [2, 1]}}}
    assert best_card([first, both], turns=(1,)) is first
    assert best_card([first, both], turns=(1, 2)) is both
    assert best_card([first, both], turns=(2,)) is both  # no card of turn 2 alone: the largest
    assert best_card([first, both]) is both
    summary = card_summary(first | {"agreement": {}, "kind": "pairwise"})
    assert summary is not None and summary["turns"] == [1] and best_card([summary, both], turns=(1,)) is summary
