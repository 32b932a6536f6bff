"""llama.cpp's own HTTP server, ``llama-server``: the embedded judge's runtime, where it is and how it is built.

Why llama.cpp's server and not llama-cpp-python's: on the main job's 32 judge requests it was 1.48x as fast (it checks
the sampled token against the verdict grammar before checking the whole vocabulary), and it returns log
probabilities without keeping every position's logits, so expected verdicts cost no extra memory
(docs/benchmarks.md, "The embedded judge on llama.cpp's own server").

The index publishes no build of it, so it is built once per machine from source: llama.cpp as vendored in
llama-cpp-python's sdist (MIT), fetched by pip and checked against a pinned sha256. The binary is static, so it is
kept in the user's cache and reused by every virtual environment. It is built for this CPU (AVX-512 where there is
some): 1.12x as fast as a portable AVX2 build on the main job here. A cache shared with another kind of CPU holds a
build per kind, so a binary is never run on a CPU that lacks its instructions.
"""

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path

from llama_stack_judge.errors import JudgeError

SOURCE_PACKAGE = "llama-cpp-python"
SOURCE_VERSION = "0.3.36"
SOURCE_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
SOURCE_SUBDIR = "vendor/llama.cpp"
RUNTIME = f"llama.cpp llama-server (from {SOURCE_PACKAGE} {SOURCE_VERSION}'s sources)"


def cpu_kind() -> str:
    """A short tag of this CPU's instruction sets (its /proc/cpuinfo flags), or of its architecture elsewhere."""
    features = platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                features = line.split(":", 1)[1].strip()
                break
    return f"{platform.machine()}-{hashlib.sha256(features.encode()).hexdigest()[:10]}"


SERVER_ENV = "LLAMA_STACK_JUDGE_LLAMA_SERVER"  # a llama-server binary of your own (a GPU build, say)
DEFAULT_SERVER_DIR = Path.home() / ".cache" / "llama-stack-judge" / "llama-server" / f"{SOURCE_VERSION}-{cpu_kind()}"
BINARY = "llama-server"
INSTALL_COMMAND = "llama-stack-judge install-server"
# Built for this CPU (the cache directory is per kind of CPU), static (one file to keep), and nothing the judge does
# not use: no tests, examples, downloads or TLS.
BUILD_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_OPENSSL=OFF",
)


class ServerBuildError(JudgeError):
    """llama-server is not built, or could not be built."""


def runtime() -> str:
    """What runs the embedded judge, in words (kept with a run's results): the built server, or yours."""
    chosen = os.environ.get(SERVER_ENV)
    return f"llama-server {chosen} (${SERVER_ENV})" if chosen else RUNTIME


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def built_server() -> Path | None:
    """The binary ``install-server`` built into the cache for this kind of CPU, if there is one."""
    binary = DEFAULT_SERVER_DIR / BINARY
    return binary if _executable(binary) else None


def installed_server() -> Path:
    """The llama-server binary to run: ``$LLAMA_STACK_JUDGE_LLAMA_SERVER``, else the one built into the cache."""
    chosen = os.environ.get(SERVER_ENV)
    binary = Path(chosen) if chosen else DEFAULT_SERVER_DIR / BINARY
    if not _executable(binary):
        if chosen:
            raise ServerBuildError(f"{SERVER_ENV}={chosen} is not an executable file")
        raise ServerBuildError(
            f"the embedded judge runs llama.cpp's llama-server, which is not built here: run `{INSTALL_COMMAND}` "
            f"(it builds it from source once, ~7 min on 2 cores) or set {SERVER_ENV} to a llama-server binary"
        )
    return binary


def build_server(
    target_dir: Path = DEFAULT_SERVER_DIR,
    *,
    extra_cmake_args: tuple[str, ...] = (),
    jobs: int = 2,
    say: Callable[[str], None] = print,
) -> Path:
    """Fetch the pinned sources, build llama-server into ``target_dir`` and return the binary's path.

    The binary replaces an earlier one only once it is built; ``build.json`` beside it records what it is.
    """
    # On the PATH, or pip's cmake in this environment (scripts/setup.sh installs it where the PATH has none).
    cmake = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if cmake is None:
        raise ServerBuildError("building llama-server needs cmake (pip install cmake, or apt-get install cmake)")
    with tempfile.TemporaryDirectory(prefix="llama-server-build-") as scratch:
        work = Path(scratch)
        say(f"fetching {SOURCE_PACKAGE} {SOURCE_VERSION}'s sources (sha256 {SOURCE_SHA256[:12]}…)")
        source = _unpack(_download_source(work), work) / SOURCE_SUBDIR
        build = work / "build"
        flags = [*BUILD_FLAGS, *extra_cmake_args]
        say(f"building llama-server with {jobs} jobs (~7 min on 2 cores): {' '.join(flags)}")
        _run([cmake, "-S", str(source), "-B", str(build), *flags], work / "configure.log")
        _run([cmake, "--build", str(build), "--target", BINARY, "-j", str(jobs)], work / "build.log")
        built = build / "bin" / BINARY
        target_dir.mkdir(parents=True, exist_ok=True)
        staged = target_dir / f".{BINARY}.{os.getpid()}"
        shutil.copy2(built, staged)
        staged.replace(target_dir / BINARY)
    record = {"source": f"{SOURCE_PACKAGE}=={SOURCE_VERSION}", "sha256": SOURCE_SHA256, "cmake_args": flags}
    (target_dir / "build.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return target_dir / BINARY


def _download_source(work: Path) -> Path:
    requirement = work / "requirements.txt"
    requirement.write_text(f"{SOURCE_PACKAGE}=={SOURCE_VERSION} --hash=sha256:{SOURCE_SHA256}\n", encoding="utf-8")
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", SOURCE_PACKAGE]
    _run([*command, "--require-hashes", "-r", str(requirement), "-d", str(work)], work / "download.log")
    found = sorted(work.glob("*.tar.gz"))
    if len(found) != 1:
        raise ServerBuildError(f"pip downloaded {len(found)} source archives of {SOURCE_PACKAGE}, not one")
    return found[0]


def _unpack(archive: Path, work: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(work / "src", filter="data")
    (root,) = (work / "src").iterdir()
    return root


def _run(command: list[str], log: Path) -> None:
    with log.open("wb") as out:
        finished = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if finished.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise ServerBuildError(f"`{' '.join(command[:3])} …` failed (exit {finished.returncode}):\n{tail}")
