"""Params: the YAML file that describes a target and what to check.

Loading is three small steps, each testable:
1. ``read_raw`` parses YAML into plain data (no ``${NAME}`` resolved yet);
2. ``apply_overrides`` applies ``--set key.path=value`` to that raw data;
3. ``resolve_env`` replaces ``${NAME}`` with values from an environment mapping,
   then pydantic validates (unknown keys and wrong types are refused with the
   field path).

The raw data (references unresolved) is what gets written to the run
directory: notebooks re-resolve from their own environment, so a secret value
never reaches a file.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._errors import MissingVariableError, ParamsError

__all__ = [
    "Params",
    "TargetConfig",
    "HealthConfig",
    "load_params",
    "LenientEnv",
    "read_raw",
    "apply_overrides",
    "resolve_env",
    "validate_params",
    "redact",
    "SECTION_ORDER",
]

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Sections run in this order; the report comes last.
SECTION_ORDER: tuple[str, ...] = (
    "health",
    "suites",
    "websocket",
    "golden_path",
    "isolation",
    "performance",
    "contract",
)


# Sections that act as the service's users: they need params' scenario block.
SCENARIO_SECTIONS: tuple[str, ...] = ("websocket", "golden_path", "isolation", "performance")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TargetConfig(_Strict):
    name: str = Field("candidate", description="Label shown in the report (e.g. 'candidate', 'v2.3.1').")
    base_url: str = Field(..., description="Base HTTP URL of the service, e.g. https://staging.example.com")
    ws_base_url: str | None = Field(
        None, description="Base WebSocket URL; derived from base_url (http->ws, https->wss) when omitted."
    )
    commit: str | None = Field(None, description="Commit or version of the service, recorded in baselines.")

    def websocket_url(self, path: str) -> str:
        base = self.ws_base_url or re.sub(r"^http", "ws", self.base_url, count=1)
        return base.rstrip("/") + path


class HealthEndpoint(_Strict):
    path: str
    method: Literal["GET", "HEAD", "OPTIONS"] = "GET"
    expect_status: int = 200
    json_keys: list[str] = Field(default_factory=list, description="Keys the JSON body must hold.")


class HealthWebSocket(_Strict):
    path: str = Field(..., description="WebSocket path that echoes a text message back, e.g. /ws/echo")
    message: str = "stability-proof ping"
    expect_echo: bool = True


class HealthConfig(_Strict):
    enabled: bool = True
    samples: int = Field(5, ge=1, le=200, description="Requests per endpoint.")
    timeout_s: float = Field(5.0, gt=0, le=60)
    endpoints: list[HealthEndpoint] = Field(default_factory=lambda: [HealthEndpoint(path="/health")])
    websocket: HealthWebSocket | None = None


class ChecksConfig(_Strict):
    informative: list[str] = Field(
        default_factory=list, description="Claim ids (or prefixes ending in '*') reported but not deciding the verdict."
    )


class WarningsConfig(_Strict):
    fail_run: bool = Field(False, description="Any evidence warning makes the run FAIL.")
    coverage_floor: float | None = Field(None, ge=0, le=1)
    min_samples: int = Field(20, ge=1, description="Fewer samples than this behind a statistical claim is flagged.")


class RunnerConfig(_Strict):
    workers: int = Field(2, ge=1, le=8)
    section_timeout_s: float = Field(900, gt=0, le=3600, description="Per-cell execution timeout.")
    notebooks_dir: str | None = Field(
        None, description="Folder of section notebooks to use instead of the bundled ones (relative to the params file)."
    )


def _section_models() -> dict[str, Any]:
    # Imported lazily: each section owns its config model in its own module.
    from ._contract import ContractConfig
    from ._perf import PerformanceConfig
    from ._probes import GoldenPathSectionConfig, IsolationSectionConfig, WebSocketSectionConfig
    from ._suites import SuitesConfig

    return {
        "suites": SuitesConfig,
        "websocket": WebSocketSectionConfig,
        "golden_path": GoldenPathSectionConfig,
        "isolation": IsolationSectionConfig,
        "performance": PerformanceConfig,
        "contract": ContractConfig,
    }


class Params(_Strict):
    """Validated params. Built by ``validate_params``; never holds unresolved ``${NAME}``."""

    title: str = Field(..., description="The change under test, as the report's title says it.")
    environment: Literal["demo", "local", "ci", "staging", "production"] = "local"
    description: str = ""
    target: TargetConfig
    baseline: TargetConfig | None = Field(None, description="A live baseline target for A/B comparison.")
    scenario: Any = None  # ScenarioConfig, validated in validate_params
    sections: dict[str, Any] = Field(default_factory=dict)
    checks: ChecksConfig = ChecksConfig()
    warnings: WarningsConfig = WarningsConfig()
    runner: RunnerConfig = RunnerConfig()

    def is_required(self, claim_id: str) -> bool:
        for pattern in self.checks.informative:
            if pattern == claim_id or (pattern.endswith("*") and claim_id.startswith(pattern[:-1])):
                return False
        return True

    def section(self, name: str) -> Any:
        return self.sections[name]

    def enabled_sections(self) -> list[str]:
        return [name for name in SECTION_ORDER if getattr(self.sections.get(name), "enabled", False)]


def read_raw(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ParamsError(f"cannot read params file {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping")
    return data


def apply_overrides(raw: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` strings; the value is parsed as a YAML scalar/flow value."""
    data = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value_text = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"--set {item!r}: expected key.path=value")
        try:
            value = yaml.safe_load(value_text) if value_text else ""
        except yaml.YAMLError as exc:
            raise ParamsError(f"--set {item!r}: value is not valid YAML: {exc}") from exc
        node: dict[str, Any] = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ParamsError(f"--set {item!r}: {part} is not a mapping")
            node = child
        node[parts[-1]] = value
    return data


def resolve_env(raw: Any, env: Mapping[str, str], where: str = "") -> Any:
    """Replace every ``${NAME}`` in strings; a missing variable is named with its field path."""
    if isinstance(raw, dict):
        return {k: resolve_env(v, env, f"{where}.{k}" if where else str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [resolve_env(v, env, f"{where}[{i}]") for i, v in enumerate(raw)]
    if isinstance(raw, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise MissingVariableError(name, where or "<top>")
            return env[name]

        return ENV_REFERENCE.sub(sub, raw)
    return raw


def _validation_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join([prefix, *(str(p) for p in err["loc"])] if prefix else [str(p) for p in err["loc"]])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(f"{loc or '<top>'}: {msg}")
    return out


def validate_params(resolved: Mapping[str, Any]) -> Params:
    data = dict(resolved)
    models = {"health": HealthConfig, **_section_models()}
    sections_raw = data.pop("sections", None) or {}
    scenario_raw = data.pop("scenario", None)
    errors: list[str] = []
    if not isinstance(sections_raw, dict):
        raise ParamsError("invalid params: sections: must be a mapping")
    sections: dict[str, Any] = {}
    for name, value in sections_raw.items():
        model = models.get(name)
        if model is None:
            errors.append(f"sections.{name}: unknown section (known: {', '.join(SECTION_ORDER)})")
            continue
        try:
            sections[name] = model.model_validate(value or {})
        except ValidationError as exc:
            errors += _validation_messages(exc, f"sections.{name}")
    for name in SECTION_ORDER:
        if name not in sections:
            sections[name] = models[name].model_validate({"enabled": False})
    scenario = None
    if scenario_raw is not None:
        from ._scenario import ScenarioConfig

        try:
            scenario = ScenarioConfig.model_validate(scenario_raw)
        except ValidationError as exc:
            errors += _validation_messages(exc, "scenario")
    params = None
    try:
        params = Params.model_validate(data)
    except ValidationError as exc:
        errors = _validation_messages(exc) + errors
    if scenario is None and scenario_raw is None:
        for name in SCENARIO_SECTIONS:
            if getattr(sections[name], "enabled", False):
                errors.append(f"sections.{name}: needs a 'scenario' block (how users log in and what they do)")
    if errors or params is None:
        raise ParamsError("invalid params: " + "; ".join(errors))
    return params.model_copy(update={"sections": sections, "scenario": scenario})


class LenientEnv(dict):
    """Environment for re-reading stored params where no secret is needed (rendering a report):
    an unset variable becomes a visible marker instead of an error."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str:
        import os

        return os.environ.get(key, f"<{key} not set>")


def load_params(
    path: str | Path, overrides: list[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[Params, dict[str, Any]]:
    """Read, override, resolve and validate. Returns (params, raw data with references unresolved)."""
    import os

    raw = apply_overrides(read_raw(path), overrides or [])
    resolved = resolve_env(raw, os.environ if env is None else env)
    return validate_params(resolved), raw


_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|cookie", re.IGNORECASE)


def redact(raw: Any, key: str = "") -> Any:
    """Params as shown in the report: ``${NAME}`` references stay as written (they hold no value);
    a literal value under a secret-looking key is replaced by ``***``."""
    if isinstance(raw, dict):
        return {k: redact(v, str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [redact(v, key) for v in raw]
    if isinstance(raw, str) and _SECRET_KEY.search(key) and not ENV_REFERENCE.fullmatch(raw.strip()):
        return "***"
    return raw
