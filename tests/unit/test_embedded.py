"""The embedded judge's packaged-model check and the managed llama.cpp server's lifecycle."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from llama_stack_judge.embedded import llama_server
from llama_stack_judge.embedded.models import (
    MODELS,
    SMOLLM2_135M,
    EmbeddedModel,
    ModelFileError,
    PackagedFile,
    model_file,
)
from llama_stack_judge.embedded.server import LlamaCppServer, ServerError, ServerSettings
from tests.embedded_marks import needs_llama_server, needs_smollm2

# Two files of an installed distribution stand in for a model's part packages.
PART_A = PackagedFile("pyyaml", "yaml/__init__.py")
PART_B = PackagedFile("pyyaml", "yaml/constructor.py")


def packaged_model(
    parts: tuple[PackagedFile, ...], *, sha256: str | None = None, size: int | None = None
) -> EmbeddedModel:
    content = b"".join(part.locate().read_bytes() for part in parts)
    return EmbeddedModel(
        name="test-model",
        file_name="test-model.gguf",
        parts=parts,
        size=len(content) if size is None else size,
        sha256=hashlib.sha256(content).hexdigest() if sha256 is None else sha256,
        min_memory_gb=0.0,
        install="pip install test-model",
        licence="test",
        source="test",
    )


def test_parts_are_joined_once_and_checked(tmp_path: Path) -> None:
    model = packaged_model((PART_A, PART_B))
    joined = model_file(model, tmp_path)
    assert joined == tmp_path / "test-model.gguf"
    assert joined.read_bytes() == PART_A.locate().read_bytes() + PART_B.locate().read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["test-model.gguf"]  # no temporary file left
    assert model_file(model, tmp_path) == joined


def test_a_joined_file_that_changed_on_disk_is_refused(tmp_path: Path) -> None:
    model = packaged_model((PART_A, PART_B))
    joined = model_file(model, tmp_path)
    joined.write_bytes(joined.read_bytes()[:-1] + b"!")
    with pytest.raises(ModelFileError, match=r"test-model.gguf: sha256 .* is not the pinned .*pip install test-model"):
        model_file(model, tmp_path)


def test_parts_with_the_wrong_hash_leave_no_file(tmp_path: Path) -> None:
    model = packaged_model((PART_A, PART_B), sha256="0" * 64)
    with pytest.raises(ModelFileError, match="is not the pinned 0000"):
        model_file(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_single_file_model_is_used_in_place_and_checked(tmp_path: Path) -> None:
    assert model_file(packaged_model((PART_A,)), tmp_path) == PART_A.locate()
    with pytest.raises(ModelFileError, match="sha256"):
        model_file(packaged_model((PART_A,), size=1), tmp_path)


def test_a_missing_part_package_names_it_and_the_install_command(tmp_path: Path) -> None:
    model = packaged_model((PART_A,))
    missing = replace(model, parts=(PART_A, PackagedFile("no-such-model-part7", "x/part07.bin")))
    with pytest.raises(ModelFileError, match=r"'no-such-model-part7' is not installed; install it with: pip install"):
        model_file(missing, tmp_path)


def test_catalogue_pins_every_model() -> None:
    for model in MODELS.values():
        assert len(model.sha256) == 64 and model.size > 0 and model.parts and model.licence


def test_a_port_in_use_is_refused_before_starting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = LlamaCppServer(ServerSettings(tmp_path / "m.gguf", "m", port=port), log_path=tmp_path / "log")
        with pytest.raises(ServerError, match=f"port {port} on 127.0.0.1 is in use"):
            server.start()
    assert not server.running


def test_too_little_memory_is_a_clear_error(tmp_path: Path) -> None:
    settings = ServerSettings(tmp_path / "m.gguf", "big-judge", min_memory_gb=1e9)
    with pytest.raises(ServerError, match=r"big-judge needs about 1000000000.0 GB of free memory"):
        LlamaCppServer(settings, log_path=tmp_path / "log").start()


@needs_llama_server
def test_a_server_that_crashes_on_start_reports_its_log(tmp_path: Path) -> None:
    not_a_model = tmp_path / "broken.gguf"
    not_a_model.write_bytes(b"this is not a GGUF file")
    server = LlamaCppServer(ServerSettings(not_a_model, "broken"), log_path=tmp_path / "server.log")
    with pytest.raises(ServerError, match=r"exited with code \d+ while starting; its log .* ends:\n"):
        server.start()
    assert not server.running


@needs_llama_server
@needs_smollm2
def test_the_server_answers_and_is_stopped_on_exit_and_on_errors(tmp_path: Path) -> None:
    settings = ServerSettings(model_file(SMOLLM2_135M), SMOLLM2_135M.name)
    server = LlamaCppServer(settings, log_path=tmp_path / "server.log")
    with pytest.raises(RuntimeError, match="boom"), server:
        pid = server._process.pid  # type: ignore[union-attr]
        assert server.running
        raise RuntimeError("boom")
    assert not server.running
    assert not _alive(pid)


@needs_llama_server
@needs_smollm2
def test_the_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_SCRIPT, str(tmp_path / "server.log")], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    assert _alive(server_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while _alive(server_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(server_pid)


_PARENT_SCRIPT = """
import sys, time
from llama_stack_judge.embedded import embedded_server
server = embedded_server("smollm2-135m-instruct", log_path=__import__("pathlib").Path(sys.argv[1])).start()
print(server._process.pid, flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) counts as gone.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def test_the_server_binary_is_the_chosen_one_or_the_built_one_or_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(llama_server.SERVER_ENV, raising=False)
    monkeypatch.setattr(llama_server, "DEFAULT_SERVER_DIR", tmp_path / "cache")
    with pytest.raises(llama_server.ServerBuildError, match="run `llama-stack-judge install-server`"):
        llama_server.installed_server()
    built = tmp_path / "cache" / "llama-server"
    built.parent.mkdir()
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    assert llama_server.installed_server() == built
    own = tmp_path / "my-llama-server"
    own.write_text("not executable")
    monkeypatch.setenv(llama_server.SERVER_ENV, str(own))
    with pytest.raises(llama_server.ServerBuildError, match=f"{llama_server.SERVER_ENV}=.* is not an executable"):
        llama_server.installed_server()
    own.chmod(0o755)
    assert llama_server.installed_server() == own


def test_a_build_without_cmake_or_with_a_failing_step_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(llama_server.shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(llama_server.ServerBuildError, match="building llama-server needs cmake"):
        llama_server.build_server(tmp_path / "cache", say=lambda _: None)
    assert not (tmp_path / "cache").exists()
    failing = [sys.executable, "-c", "import sys; print('step output'); print('the cause'); sys.exit(3)"]
    with pytest.raises(llama_server.ServerBuildError, match=r"failed \(exit 3\):\nstep output\nthe cause$"):
        llama_server._run(failing, tmp_path / "step.log")
