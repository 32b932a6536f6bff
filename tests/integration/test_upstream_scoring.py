"""llama-stack 0.7.3's own scoring integration tests, run against our scoring provider in both client modes.

The test file and its dataset are taken from the ``llama-stack==0.7.3`` source distribution at test time (pip's cache
keeps the download), never copied into this repository. Only the ids it hard-codes are adapted: the built-in
providers' ids become ours (``judge``) and ``basic::equality`` becomes ``judge::subset_of``. Its aggregation test
asserts that ``aggregated_results`` holds exactly one entry per requested aggregation function.
"""

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.stacks import REPO

pytestmark = pytest.mark.integration

SDIST = "llama_stack-0.7.3"
PINNED = ("llama-stack==0.7.3", "--dest")
UPSTREAM_FILES = {
    f"{SDIST}/tests/integration/scoring/test_scoring.py": "scoring/test_scoring.py",
    f"{SDIST}/tests/integration/datasets/test_dataset.csv": "datasets/test_dataset.csv",
}
# The only changes: ids of the built-in providers and of their functions. Our provider serves both kinds: its first
# function (the one the aggregation test takes) is the built-in subset_of, so it stands in for "basic" there.
ADAPTED_IDS = {
    '"basic::equality"': '"judge::subset_of"',
    '"llm-as-judge::base"': '"judge::helpfulness-v1"',
    '"inline::llm-as-judge"': '"inline::judge-scoring"',
    '        "basic",\n': '        "judge",\n',
    'scoring_fn.provider_id == "basic"': 'scoring_fn.provider_id == "judge"',
}


@pytest.fixture(scope="module")
def upstream_tests(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The upstream test file (ids adapted) and its dataset, with fixtures that give it our stacks."""
    downloads = tmp_path_factory.mktemp("sdist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--no-binary",
            ":all:",
            *PINNED,
            str(downloads),
        ],
        check=True,
        capture_output=True,
    )
    root = tmp_path_factory.mktemp("upstream")
    with tarfile.open(downloads / f"{SDIST}.tar.gz") as sdist:
        for member, target in UPSTREAM_FILES.items():
            extracted = sdist.extractfile(member)
            assert extracted is not None, f"{member} is not in the sdist"
            (root / target).parent.mkdir(parents=True, exist_ok=True)
            (root / target).write_bytes(extracted.read())
    test_file = root / "scoring" / "test_scoring.py"
    source = test_file.read_text()
    for upstream_id, ours in ADAPTED_IDS.items():
        assert upstream_id in source, f"the upstream test no longer names {upstream_id}"
        source = source.replace(upstream_id, ours)
    test_file.write_text(source)
    (root / "conftest.py").write_text((REPO / "tests" / "upstream_fixtures.py").read_text())
    return root


def test_llama_stacks_own_scoring_tests_pass_against_our_provider(upstream_tests: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v", "-rs", str(upstream_tests / "scoring")],
        cwd=upstream_tests,
        env={"PYTHONPATH": str(REPO), "LLAMA_STACK_LOG_FORMAT": "json", "PATH": str(Path(sys.executable).parent)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    outcomes = dict(re.findall(r"::(test_\S+) (PASSED|FAILED|SKIPPED|ERROR)", run.stdout))
    assert run.returncode == 0, run.stdout[-4000:]
    # Every test that can run against ours did, in both modes; the HTTP-only unregister is skipped in library mode.
    for mode in ("library", "served"):
        for test in (
            f"test_scoring_score_with_aggregation_functions[{mode}-judge]",
            f"test_scoring_score_with_params_llm_as_judge[{mode}]",
            f"test_scoring_score[{mode}-judge::subset_of]",
            f"test_scoring_functions_register[{mode}]",
        ):
            assert outcomes.get(test) == "PASSED", (test, outcomes)
    assert outcomes.get("test_scoring_functions_unregister[served]") == "PASSED", outcomes
