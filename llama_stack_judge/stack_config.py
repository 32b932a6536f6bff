"""From a provider config (providers per API) to a complete llama-stack run config."""

from difflib import get_close_matches
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from llama_stack_judge.errors import JudgeInputError
from llama_stack_judge.names import EVAL_PROVIDER_TYPE, SCORING_PROVIDER_TYPE, SCRIPTED_PROVIDER_TYPE

RESOURCES_GROUP = "llama_stack_judge.registered_resources"
DEFAULT_STATE_DIR = "${env.JUDGE_STATE_DIR:=" + str(Path.home() / ".llama" / "llama-stack-judge") + "}"
LOCALFS_DATASETIO = {
    "provider_id": "localfs",
    "provider_type": "inline::localfs",
    "config": {"kvstore": {"backend": "kv_default", "namespace": "datasetio::localfs"}},
}


def load_provider_config(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Read a provider config file: ``providers: {api: [{provider_id, provider_type, config, module?}]}``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise JudgeInputError(f"{path}: cannot read provider config: {exc}") from None
    providers = data.get("providers") if isinstance(data, dict) else None
    if not isinstance(providers, dict) or not all(isinstance(v, list) for v in providers.values()):
        raise JudgeInputError(f"{path}: expected 'providers:' mapping each API to a list of providers")
    check_our_configs(providers, where=str(path))
    return providers


def _config_classes() -> dict[str, type[BaseModel]]:
    from llama_stack_judge.eval.config import JudgeEvalConfig
    from llama_stack_judge.scoring.config import JudgeScoringConfig
    from llama_stack_judge.scripted.config import ScriptedInferenceConfig

    return {
        SCORING_PROVIDER_TYPE: JudgeScoringConfig,
        EVAL_PROVIDER_TYPE: JudgeEvalConfig,
        SCRIPTED_PROVIDER_TYPE: ScriptedInferenceConfig,
    }


def check_our_configs(providers: dict[str, list[dict[str, Any]]], *, where: str) -> None:
    """Validate the config of every provider of this package, so a typo is caught here and not by the stack later.

    Raises:
        JudgeInputError: naming the provider and each bad field, with the field it most likely meant.
    """
    classes = _config_classes()
    for entries in providers.values():
        for entry in entries:
            config_class = classes.get(str(entry.get("provider_type")))
            if config_class is None:
                continue
            try:
                config_class.model_validate(entry.get("config") or {})
            except ValidationError as exc:
                problems = []
                for problem in exc.errors():
                    name = ".".join(str(part) for part in problem["loc"])
                    hint = get_close_matches(str(problem["loc"][-1]), config_class.model_fields, n=1)
                    meant = f" (did you mean '{hint[0]}'?)" if problem["type"] == "extra_forbidden" and hint else ""
                    problems.append(f"config.{name}: {problem['msg']}{meant}")
                raise JudgeInputError(f"{where}: provider {entry.get('provider_id')}: " + "; ".join(problems)) from None


def judging_with(
    provider_id: str, provider_type: str, inference_config: dict[str, Any], judge_model: str, **scoring_config: Any
) -> dict[str, list[dict[str, Any]]]:
    """One inference provider, and our scoring provider judging with its ``judge_model`` by default."""
    return {
        "inference": [{"provider_id": provider_id, "provider_type": provider_type, "config": inference_config}],
        "scoring": [
            {
                "provider_id": "judge",
                "provider_type": SCORING_PROVIDER_TYPE,
                "module": "llama_stack_judge",
                "config": {"default_judge_model": f"{provider_id}/{judge_model}", **scoring_config},
            }
        ],
    }


def select_provider(providers: dict[str, list[dict[str, Any]]], provider_id: str) -> dict[str, list[dict[str, Any]]]:
    """Keep ``provider_id`` as the only provider of its API; other APIs are kept as they are."""
    for api, entries in providers.items():
        chosen = [entry for entry in entries if entry.get("provider_id") == provider_id]
        if chosen:
            return {**providers, api: chosen}
    known = sorted(str(entry.get("provider_id")) for entries in providers.values() for entry in entries)
    raise JudgeInputError(f"PROVIDER_ID {provider_id!r} is not in the provider config; it has {known}")


def shipped_resources(eval_provider_id: str) -> dict[str, list[dict[str, Any]]]:
    """The datasets and benchmarks that installed packages ship for our eval provider, as ``registered_resources``.

    Each is an entry point of the group ``llama_stack_judge.registered_resources``: a function of the eval
    provider's id. This package's own is MT-bench's questions and ``mt-bench`` benchmark (``mtbench/benchmark.py``).
    """
    shipped: dict[str, list[dict[str, Any]]] = {}
    for point in sorted(entry_points(group=RESOURCES_GROUP), key=lambda point: point.name):
        for kind, resources in point.load()(eval_provider_id).items():
            shipped.setdefault(kind, []).extend(resources)
    return shipped


def build_run_config(
    providers: dict[str, list[dict[str, Any]]],
    *,
    state_dir: str = DEFAULT_STATE_DIR,
    port: int = 8321,
    backends: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``version: 2`` run config with these providers, a datasetio provider and sqlite storage in ``state_dir``.

    ``backends``: the storage backends ``kv_default`` and ``sql_default`` instead (e.g. ``kv_postgres`` and
    ``sql_postgres`` on one database), and optionally ``sql_inference`` for the stack's inference store.
    """
    providers = {api: [dict(entry) for entry in entries] for api, entries in providers.items()}
    providers.setdefault("datasetio", [LOCALFS_DATASETIO])
    ours = [entry for entry in providers.get("eval", []) if entry.get("provider_type") == EVAL_PROVIDER_TYPE]
    inference_backend = "sql_inference" if backends and "sql_inference" in backends else "sql_default"
    # With our eval provider, the benchmarks installed packages ship (MT-bench's among them) come registered.
    resources = shipped_resources(str(ours[0]["provider_id"])) if ours else {}
    return {
        "version": 2,
        "distro_name": "llama-stack-judge",
        "apis": sorted(providers),
        "providers": providers,
        "storage": {
            "backends": backends
            or {
                "kv_default": {"type": "kv_sqlite", "db_path": f"{state_dir}/kvstore.db"},
                "sql_default": {"type": "sql_sqlite", "db_path": f"{state_dir}/sql_store.db"},
            },
            "stores": {
                "metadata": {"namespace": "registry", "backend": "kv_default"},
                "inference": {"table_name": "inference_store", "backend": inference_backend},
                "conversations": {"table_name": "openai_conversations", "backend": "sql_default"},
                "prompts": {"namespace": "prompts", "backend": "kv_default"},
                "connectors": {"namespace": "connectors", "backend": "kv_default"},
            },
        },
        "server": {"host": "127.0.0.1", "port": port},
        **({"registered_resources": resources} if resources else {}),
    }


def write_run_config(config: dict[str, Any], path: Path) -> Path:
    """Write a run config as YAML."""
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def stored_provider_config[C: BaseModel](run_yaml: Path, provider_type: str, config_class: type[C]) -> C:
    """The config of our provider of ``provider_type`` in ``run_yaml``, with the stack's storage backends ready.

    For commands that read a stack's stores directly, as its operator (the stack need not run).
    """
    from llama_stack.core.datatypes import StackConfig
    from llama_stack.core.stack import replace_env_vars
    from llama_stack.core.storage.sqlstore.sqlstore import register_sqlstore_backends

    try:
        config = StackConfig(**replace_env_vars(yaml.safe_load(run_yaml.read_text(encoding="utf-8"))))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise JudgeInputError(f"{run_yaml}: cannot read the run config: {exc}") from None
    entries = [p for api in config.providers.values() for p in api if p.provider_type == provider_type]
    if not entries:
        raise JudgeInputError(f"{run_yaml}: no {provider_type} provider")
    register_sqlstore_backends(config.storage.backends)
    return config_class(**(entries[0].config or {}))
