"""What an MT-bench run shows: printed tables, ``scores.png`` and a self-contained ``report.html``."""

import base64
import html
import io
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _number(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(ci: Sequence[float] | None, digits: int = 2) -> str:
    return "-" if not ci else f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _console() -> Console:
    # Markup off: what is printed (model names, errors, card lines with "[labels, …]") is text, never rich styling.
    return Console(width=None if sys.stdout.isatty() else 160, markup=False)


def single_table(summary: dict[str, Any]) -> Table:
    """Per model: turn means, overall mean with its interval, and counts (best model first)."""
    table = Table("model", "turn 1", "turn 2", "overall", "95% CI", "scored", "failed", title="MT-bench single")
    ranked = sorted(summary["models"].items(), key=lambda item: -(item[1]["overall"] or 0))
    for model, s in ranked:
        table.add_row(
            model,
            _number(s["turn_1"]),
            _number(s["turn_2"]),
            _number(s["overall"]),
            _interval(s["ci95"]),
            str(s["n_scored"]),
            str(s["n_failed"]),
        )
    return table


def category_table(summary: dict[str, Any]) -> Table:
    """Per-category means, one column per model."""
    models = sorted(summary["models"])
    categories = sorted({c for s in summary["models"].values() for c in s["categories"]})
    table = Table("category", *models, title="per category")
    for category in categories:
        table.add_row(category, *(_number(summary["models"][m]["categories"].get(category)) for m in models))
    return table


def pairwise_table(summary: dict[str, Any]) -> Table:
    """Per model: wins, losses, ties and win rate (ties = ½) with its interval."""
    table = Table("model", "wins", "losses", "ties", "win rate", "95% CI", "games", title="MT-bench pairwise")
    ranked = sorted(summary["models"].items(), key=lambda item: -(item[1]["win_rate"] or 0))
    for model, s in ranked:
        table.add_row(
            model,
            str(s["wins"]),
            str(s["losses"]),
            str(s["ties"]),
            _number(s["win_rate"], 3),
            _interval(s["ci95"], 3),
            str(s["n_games"]),
        )
    return table


def pairwise_headline(summary: dict[str, Any]) -> str:
    """Position consistency and first-position wins, the numbers that show a judge's position bias."""
    return (
        f"position consistency {_number(summary['position_consistency'], 3)} "
        f"({summary['inconsistent_ties']} of {summary['n_scored']} pairs changed winner with the order); "
        f"first position wins {_number(summary['first_position_win_rate'], 3)} of verdicts; "
        f"failed {summary['n_failed']} of {summary['n_total']}"
    )


def card_line(summary: dict[str, Any]) -> str:
    """How good this run's judge is, from its judge card, or how to measure it."""
    card = summary.get("card")
    if not card:
        command = "certify single" if summary["kind"] == "single" else "certify pairwise"
        return f"this judge has no card yet: `llama-stack-judge {command}` with the same judge options measures it"
    measured = "measured for the package" if card.get("shipped") else "certified"
    return f"{card['headline']} [{card['labels']}, {card['n_judgments']:,} judgments, {measured} {card['date']}]"


def print_cards(cards: Sequence[dict[str, Any]]) -> None:
    """Filed judge cards, newest first: key, kind, judge model and weighting, labels, size and headline."""
    from llama_stack_judge.core.card import headline

    table = Table(
        "key", "kind", "judge model", "verdicts", "labels", "judgments", "date", "card", "file", title="judge cards"
    )
    for card in cards:
        judges = list(card["run"]["judges"].values())
        models = sorted({str(j["judge_model"]) for j in judges})
        verdicts = sorted({f"{j['verdict_mode']}, {j.get('verdict_weighting', 'sampled')}" for j in judges})
        table.add_row(
            card["key"][:16],
            card["kind"],
            ", ".join(models),
            "; ".join(verdicts),
            str(card.get("labels")),
            str(card.get("n_judgments")),
            str(card["run"]["date"]),
            headline(card).removeprefix("this judge: "),
            "shipped" if card.get("shipped") else card.get("path") or f"store {str(card.get('card_id'))[:12]}",
        )
    _console().print(table if cards else "no judge cards yet: `llama-stack-judge certify single` files one")


def print_summary(summary: dict[str, Any]) -> None:
    """The summary tables on stdout."""
    console = _console()
    if summary["kind"] == "single":
        console.print(single_table(summary))
        console.print(category_table(summary))
    else:
        console.print(pairwise_table(summary))
        console.print(pairwise_headline(summary))
        for name in ("leaderboard", "leaderboard_style_controlled"):
            if summary.get(name):
                console.print(leaderboard_table(summary[name]))
        if summary.get("length_controlled", {}).get("models"):
            console.print(length_controlled_table(summary["length_controlled"]))
    usage = summary.get("usage") or {}
    console.print(
        f"judgments {summary['n_judgments']} of {summary['n_planned']}; "
        f"inference calls {usage.get('inference_calls', 0)}, cache hits {usage.get('cache_hits', 0)}, "
        f"retries {usage.get('retries', 0)}, tokens {usage.get('prompt_tokens', 0)} in / "
        f"{usage.get('completion_tokens', 0)} out"
    )
    console.print(card_line(summary))


def print_agreement(report: dict[str, Any]) -> None:
    """Agreement per turn, with and without ties, and Cohen's kappa."""
    table = Table("turn", "ours vs votes (ties)", "n", "(no ties)", "n", "kappa", "votes vs votes (ties)", "(no ties)")
    for scope, r in report.items():
        ours, votes = r["ours_vs_votes"], r["votes_vs_votes"]
        table.add_row(
            scope,
            _number(ours["with_ties"]["agreement"], 3),
            str(ours["with_ties"]["n"]),
            _number(ours["without_ties"]["agreement"], 3),
            str(ours["without_ties"]["n"]),
            _number(ours["kappa_with_ties"], 3),
            f"{_number(votes['with_ties']['agreement'], 3)} (n={votes['with_ties']['n']})",
            f"{_number(votes['without_ties']['agreement'], 3)} (n={votes['without_ties']['n']})",
        )
    _console().print(table)


def leaderboard_table(board: dict[str, Any]) -> Table:
    """Bradley-Terry ratings, best first: rank, rating with its interval, win rates and battles."""
    styled = board.get("style_coefficients")
    kind = "style-controlled Bradley-Terry" if styled else "Bradley-Terry"
    caption = None
    if styled:
        caption = "style coefficients (per SD of the answers' difference): " + ", ".join(
            f"{name} {c['value']:+.2f} {_interval(c['ci95'])}" for name, c in styled.items()
        )
    table = Table(
        "rank", "model", "rating", "95% CI", f"P(win) vs {board['anchor']}", "raw win rate", "battles",
        title=f"{kind} leaderboard ({board['n_battles']:,} battles, {board['resamples']} bootstrap refits)",
        caption=caption,
    )  # fmt: skip
    for row in board["models"]:
        table.add_row(
            "-" if row["rank"] is None else str(row["rank"]),
            row["model"],
            f"{row['rating']:.0f}",
            _interval(row["ci95"], 0),
            _number(row["win_rate_vs_anchor"], 3),
            _number(row["raw_win_rate"], 3),
            str(row["battles"]),
        )
    return table


def length_controlled_table(controlled: dict[str, Any]) -> Table:
    """Raw and length-controlled win rates against the baseline, with intervals and the length coefficient."""
    table = Table(
        "model", "win rate", "95% CI", "length-controlled", "95% CI", "length coef.", "battles",
        title=f"win rates against {controlled['baseline']}, raw and with answer length controlled",
    )  # fmt: skip
    for model, row in sorted(controlled["models"].items(), key=lambda item: -item[1]["length_controlled_win_rate"]):
        table.add_row(
            model,
            _number(row["win_rate"], 3),
            _interval(row["win_rate_ci95"], 3),
            _number(row["length_controlled_win_rate"], 3),
            _interval(row["length_controlled_ci95"], 3),
            _number(row["length_coefficient"], 2),
            str(row["n"]),
        )
    return table


def print_leaderboard(board: dict[str, Any]) -> None:
    """The leaderboard on stdout."""
    _console().print(leaderboard_table(board))


def plot(summary: dict[str, Any]) -> bytes:
    """PNG bytes: per-category bars per model (single) or win-rate bars with 95 % intervals (pairwise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted(summary["models"])
    figure, axes = plt.subplots(figsize=(10, 4.5))
    if summary["kind"] == "single":
        categories = sorted({c for s in summary["models"].values() for c in s["categories"]})
        width = 0.8 / max(1, len(models))
        for index, model in enumerate(models):
            values = [summary["models"][model]["categories"].get(c) or 0.0 for c in categories]
            positions = [i + index * width for i in range(len(categories))]
            axes.bar(positions, values, width=width, label=model)
        axes.set_xticks([i + 0.4 - width / 2 for i in range(len(categories))], categories, rotation=20)
        axes.set_ylim(0, 10)
        axes.set_ylabel("mean rating (1-10)")
        axes.legend(fontsize="small")
        axes.set_title("MT-bench single-answer ratings by category")
    else:
        rates = [summary["models"][m]["win_rate"] or 0.0 for m in models]
        errors = [
            [r - (s["ci95"] or [r, r])[0] for r, s in zip(rates, (summary["models"][m] for m in models), strict=True)],
            [(s["ci95"] or [r, r])[1] - r for r, s in zip(rates, (summary["models"][m] for m in models), strict=True)],
        ]
        axes.bar(models, rates, yerr=errors, capsize=6, color="tab:blue")
        axes.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        axes.set_ylim(0, 1)
        axes.set_ylabel("win rate (ties = 1/2), 95% CI")
        axes.set_title("MT-bench pairwise win rates")
    return _png(figure)


def leaderboard_plot(board: dict[str, Any]) -> bytes:
    """PNG bytes: each model's Bradley-Terry rating with its 95 % interval, best on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = board["models"][::-1]
    ratings = [row["rating"] for row in rows]
    errors = [
        [row["rating"] - (row["ci95"] or [row["rating"]] * 2)[0] for row in rows],
        [(row["ci95"] or [row["rating"]] * 2)[1] - row["rating"] for row in rows],
    ]
    figure, axes = plt.subplots(figsize=(8, 0.5 * len(rows) + 1.2))
    axes.errorbar(ratings, range(len(rows)), xerr=errors, fmt="o", capsize=5, color="tab:blue")
    axes.set_yticks(range(len(rows)), [row["model"] for row in rows])
    axes.axvline(1000, color="grey", linewidth=0.8, linestyle="--")
    axes.set_xlabel(f"Bradley-Terry rating, 95% CI ({board['anchor']} = 1000)")
    return _png(figure)


def _png(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(column.header))}</th>" for column in table.columns)
    cells = [list(column.cells) for column in table.columns]
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cells[c][r]))}</td>" for c in range(len(cells))) + "</tr>"
        for r in range(table.row_count)
    )
    caption = f"<p>{html.escape(str(table.caption))}</p>" if table.caption else ""
    return f"<h2>{html.escape(str(table.title or ''))}</h2><table><tr>{head}</tr>{body}</table>{caption}"


def _judgment_rows(kind: str, judgments: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """The judgment index table (linking to each text) and the texts themselves."""
    index, texts = [], []
    for number, j in enumerate(judgments):
        anchor = f"j{number}"
        if kind == "single":
            who, verdict = j["model"], _number(j["score"], 1)
            outputs = [("judge output", j.get("judge_output"))]
        else:
            who, verdict = f"{j['model_a']} vs {j['model_b']}", str(j.get("winner"))
            outputs = [("order A/B", j.get("judge_output_ab")), ("order B/A", j.get("judge_output_ba"))]
        flag = "verdict-like text in the response" if j.get("verdict_in_response") else ""
        cells = (j["question_id"], j["turn"], j.get("category"), who, j.get("judge"), verdict, j["status"], flag)
        index.append(
            "<tr>"
            + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in cells)
            + f'<td><a href="#{anchor}">text</a></td></tr>'
        )
        blocks = "".join(f"<h4>{label}</h4><pre>{html.escape(text or '')}</pre>" for label, text in outputs)
        error = f"<p class=error>{html.escape(j['error'])}</p>" if j.get("error") else ""
        texts.append(
            f'<section id="{anchor}"><h3>#{number}: question {j["question_id"]}, turn {j["turn"]}, '
            f"{html.escape(str(who))}</h3>{error}{blocks}</section>"
        )
    columns = ("question", "turn", "category", "model", "judge", "verdict", "status", "flag", "")
    head = "".join(f"<th>{h}</th>" for h in columns)
    return f"<table><tr>{head}</tr>{''.join(index)}</table>", "".join(texts)


def _single_judges(judges: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any]]]:
    """Each judge by name; a panel's members (and escalation judge) each on their own, named by their role."""
    shown: list[tuple[str, Mapping[str, Any]]] = []
    for name, judge in sorted(judges.items()):
        if "panel" not in judge:
            shown.append((name, judge))
            continue
        shown += [(f"{name}, {judge['combine']} panel member", member) for member in judge["panel"].values()]
        if judge.get("escalate_to"):
            shown.append((f"{name}, escalation judge", judge["escalate_to"]))
    return shown


def _run_section(run: dict[str, Any] | None) -> str:
    """What produced the run: command, date, versions, judges and input files (with their hashes)."""
    if not run:
        return ""
    facts = [
        ("command", run["command"]),
        ("date", run["date"]),
        ("versions", ", ".join(f"{name} {number}" for name, number in run["versions"].items())),
        ("judge", run["judge_source"]),
        ("scoring function", run["scoring_function"]),
        ("selection", ", ".join(f"{key} {value}" for key, value in run["selection"].items() if value is not None)),
    ]
    files = run["files"]
    for record in [*files["answers"], files["questions"], files["references"]]:
        facts.append(("file", f"{record['path']} (sha256 {record['sha256']})"))
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    judges = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(j['judge_model']))}</td>"
        f"<td><code>{html.escape(j['content_hash'][:16])}</code></td>"
        f"<td>{html.escape(j['verdict_mode'])}, {html.escape(j.get('verdict_weighting', 'sampled'))}</td>"
        f"<td>{html.escape(', '.join(f'{k} {v}' for k, v in j['sampling'].items() if v is not None))}</td></tr>"
        for name, j in _single_judges(run["judges"])
    )
    judge_table = (
        "<table id=judges><tr><th>judge</th><th>model</th><th>definition sha256</th><th>verdict</th>"
        f"<th>sampling</th></tr>{judges}</table>"
        if judges
        else ""
    )
    return f"<h2>Run</h2><table id=run>{rows}</table>{judge_table}"


_STYLE = (
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
    "pre{white-space:pre-wrap;background:#f6f6f6;padding:8px}.error{color:#b00}img{max-width:100%}"
)


def write_report(output: Path, summary: dict[str, Any], judgments: Sequence[dict[str, Any]]) -> None:
    """Write ``scores.png`` and ``report.html`` (tables, the plot inlined, and every judgment's text)."""
    image = plot(summary) if summary["models"] else b""
    if image:
        (output / "scores.png").write_bytes(image)
    if summary["kind"] == "single":
        tables = _html_table(single_table(summary)) + _html_table(category_table(summary))
    else:
        tables = _html_table(pairwise_table(summary)) + f"<p>{html.escape(pairwise_headline(summary))}</p>"
        if board := summary.get("leaderboard"):
            rating_plot = base64.b64encode(leaderboard_plot(board)).decode()
            tables += _html_table(leaderboard_table(board))
            tables += f'<img alt="ratings" src="data:image/png;base64,{rating_plot}">'
        if styled := summary.get("leaderboard_style_controlled"):
            tables += _html_table(leaderboard_table(styled))
        if summary.get("length_controlled", {}).get("models"):
            tables += _html_table(length_controlled_table(summary["length_controlled"]))
    picture = f'<img alt="scores" src="data:image/png;base64,{base64.b64encode(image).decode()}">' if image else ""
    index, texts = _judgment_rows(summary["kind"], judgments)
    status = "" if summary["complete"] else "<p class=error>Interrupted: not every judgment was made.</p>"
    page = (
        f"<!doctype html><html><head><meta charset=utf-8><title>MT-bench {summary['kind']}</title>"
        f"<style>{_STYLE}</style></head><body><h1>MT-bench {summary['kind']}</h1>{status}"
        f"<p id=card>{html.escape(card_line(summary))}</p>{tables}{picture}"
        f"{_run_section(summary.get('run'))}<h2>Judgments</h2>{index}{texts}</body></html>"
    )
    (output / "report.html").write_text(page, encoding="utf-8")
