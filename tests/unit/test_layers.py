"""The package's layers, checked on its own imports: what the judge engine and the eval provider may not import."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "llama_stack_judge"


def _imported(path: Path) -> set[str]:
    """The modules a file imports, by absolute name (relative imports resolved against the package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module if node.level == 0 else f"llama_stack_judge.{node.module}")
    return names


def test_the_engine_imports_only_itself_and_the_errors() -> None:
    """Every module of ``core`` imports, of this package, only ``core`` and ``errors``: no provider, no MT-bench."""
    files = sorted((PACKAGE / "core").glob("*.py"))
    assert len(files) >= 25  # the folder was found
    outside = {
        f"{path.name}: {name}"
        for path in files
        for name in _imported(path)
        if name.startswith("llama_stack_judge.")
        and not name.startswith(("llama_stack_judge.core", "llama_stack_judge.errors"))
    }
    assert outside == set()


def test_the_engine_loads_no_llama_stack_module() -> None:
    """Importing every engine module (and the certification and leaderboard maths) loads no llama-stack module."""
    core = sorted(f"llama_stack_judge.core.{path.stem}" for path in (PACKAGE / "core").glob("*.py"))
    modules = [*core, "llama_stack_judge.mtbench.certification", "llama_stack_judge.cardbook"]
    code = (
        f"import sys, {', '.join(modules)}; "
        "print(sorted(m for m in sys.modules if m.startswith('llama_stack') and not m.startswith('llama_stack_judge')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_eval_provider_reaches_mt_bench_only_for_its_labels() -> None:
    """The eval provider fills MT-bench rows through the row-expander hook, not by importing MT-bench.

    The one exception is the certification benchmark (``eval/certifier.py``): the labels it certifies a judge on are
    MT-bench's development labels, shipped in ``mtbench/data/dev``.
    """
    importers = {
        path.name
        for path in (PACKAGE / "eval").glob("*.py")
        if any(name.startswith("llama_stack_judge.mtbench") for name in _imported(path))
    }
    assert importers == {"certifier.py"}
