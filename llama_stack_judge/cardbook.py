"""Judge cards kept as JSON files, found again by what decides a verdict.

A card is filed under the key of its judges (``card_key``): their models and definition hashes, which cover the
prompts, verdict mode, weighting and sampling. Any run judged by the same judges finds it, whatever the functions
are called; a judge that differs in any of those (another model, a new prompt, expected instead of sampled
verdicts) has no card until certified.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

CARDS_DIR = "cards"
KEY_CHARS = 16  # of the key's hex digest in file names: enough to tell judges apart, short enough to read


def card_key(judges: Mapping[str, Mapping[str, Any]]) -> str:
    """sha256 of the judges' models and definition hashes (not their ids): the same judges give the same key.

    The definition hash covers everything else that decides a verdict (prompts, verdict mode, weighting, sampling),
    and leaves fields out while they keep the value they had before they existed: a key stays valid when the
    package learns a new option.
    """
    pairs = sorted(_judged_by(p) for p in judges.values())
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()


def _judged_by(provenance: Mapping[str, Any]) -> str:
    """A judge's model and definition hash; a panel's, its rule's and its escalation judge's, all of its members'."""
    if "panel" not in provenance:
        return f"{provenance['judge_model']} {provenance['content_hash']}"
    members = sorted(_judged_by(member) for member in provenance["panel"].values())
    escalation = provenance.get("escalate_to")
    return f"panel {provenance.get('combine')} {members} escalating to {escalation and _judged_by(escalation)}"


# Cards measured for the package's own default judge, so a fresh install shows how good it is. A shipped card is
# found only while its judges are exactly the ones measured (same definitions, model, mode and sampling).
SHIPPED_CARDS = Path(__file__).parent / "cards"


def card_book(state_dir: Path) -> "CardBook":
    """The cards of a command's state directory (``--state-dir``), and the shipped ones."""
    return CardBook(state_dir / CARDS_DIR, shipped=SHIPPED_CARDS)


class CardBook:
    """A folder of judge cards (and a read-only one of shipped cards); the largest card of a key is the one shown."""

    def __init__(self, directory: Path | None, *, shipped: Path | None = None) -> None:
        self.directory = directory
        self.shipped = shipped

    def save(self, card: Mapping[str, Any]) -> Path:
        """File ``card`` under the key of its judges; returns its path."""
        if self.directory is None:
            raise ValueError("this book only reads shipped cards")
        key = card_key(card["run"]["judges"])
        stamp = str(card["run"]["date"]).replace(":", "").replace("-", "")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key[:KEY_CHARS]}-{card['kind']}-{stamp}.json"
        path.write_text(json.dumps({"key": key, **card}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return path

    def cards(self) -> list[dict[str, Any]]:
        """Every readable card, newest first (an unreadable file is skipped: cards are a record, not an input)."""
        found = []
        for folder, shipped in ((self.directory, False), (self.shipped, True)):
            for path in sorted(folder.glob("*.json")) if folder is not None and folder.is_dir() else []:
                try:
                    card = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                try:
                    key = card_key(card["run"]["judges"])
                except (TypeError, KeyError):
                    continue
                found.append(card | {"key": key, "path": str(path), "shipped": shipped})
        return sorted(found, key=lambda card: str(card.get("run", {}).get("date")), reverse=True)

    def find(
        self, judges: Mapping[str, Mapping[str, Any]], *, turns: Sequence[int] | None = None
    ) -> dict[str, Any] | None:
        """The card of these judges with the most judgments (the newest of equals), if any; see ``best_card``."""
        key = card_key(judges)
        return best_card((card for card in self.cards() if card["key"] == key), turns=turns)


def card_turns(card: Mapping[str, Any]) -> list[int] | None:
    """The turns a card's (or a card summary's) judgments were made on, where it says."""
    turns = card.get("turns") or card.get("run", {}).get("selection", {}).get("turns")
    return sorted(turns) if turns else None


def _card_date(card: Mapping[str, Any]) -> str:
    return str(card.get("date") or card.get("run", {}).get("date"))


def best_card(cards: Iterable[dict[str, Any]], *, turns: Sequence[int] | None = None) -> dict[str, Any] | None:
    """Of one judge's cards, the one shown: the most judgments, then the newest.

    With ``turns`` (those of the run that shows it), a card measured on the same turns comes first: a judge can be
    much better on first turns than on second ones, and a run should show the figures that describe it.
    """
    cards = list(cards)
    if turns is not None:
        cards = [card for card in cards if card_turns(card) == sorted(turns)] or cards
    return max(cards, key=lambda card: (int(card.get("n_judgments") or 0), _card_date(card)), default=None)


def card_summary(card: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What a run shows of its judges' card: the headline, labels, size, date and where it is kept."""
    from llama_stack_judge.core.card import headline

    if card is None:
        return None
    return {
        "headline": headline(card),
        "labels": card.get("labels"),
        "n_judgments": card.get("n_judgments"),
        "date": card.get("run", {}).get("date"),
        "turns": card_turns(card),
        "shipped": bool(card.get("shipped")),
    } | {name: card[name] for name in ("path", "card_id") if name in card}
