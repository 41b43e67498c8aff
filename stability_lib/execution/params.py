"""Params: the YAML file that describes a target and what to check.

Loading is three small steps, each testable:
1. ``read_raw`` parses YAML into plain data (no ``${NAME}`` resolved yet);
2. ``apply_overrides`` applies ``--set key.path=value`` to that raw data;
3. ``resolve_env`` (``probes.env_refs``) replaces ``${NAME}`` with values from an environment mapping,
   then pydantic validates (unknown keys and wrong types are refused with the
   field path).

The raw data (references unresolved) is what gets written to the run
directory: notebooks re-resolve from their own environment, so a secret value
never reaches a file.

Untrusted input stays bounded: the file is read only when it is a regular file
of at most ``MAX_PARAMS_BYTES``, UTF-8; YAML keys may not repeat; and a document
whose aliases would expand past ``MAX_EXPANDED_SIZE`` or nest deeper than
``MAX_DEPTH`` is refused before anything walks it (a few anchors for repeated
steps are fine, a "billion laughs" is not). Every refusal is one ``ParamsError``
line that names the file and line or the field.
"""

from __future__ import annotations

import copy
import functools
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..core.errors import ParamsError
from ..probes.config import HealthConfig, HealthEndpoint, HealthWebSocket, TargetConfig
from ..probes.env_refs import ENV_REFERENCE, resolve_env

__all__ = [
    "Params",
    "TargetConfig",
    "HealthConfig",
    "load_params",
    "LenientEnv",
    "read_raw",
    "apply_overrides",
    "resolve_env",
    "ENV_REFERENCE",
    "validate_params",
    "redact",
    "SECTION_ORDER",
    "HealthEndpoint",
    "HealthWebSocket",
    "no_live_target",
    "sections_needing_target",
]

MAX_PARAMS_BYTES = 1 << 20  # a params file is hand-written: 1 MiB is hundreds of times a real one
# Nodes plus scalar characters after aliases are expanded. An alias-free document counts about one
# unit per byte, so this never refuses a file under MAX_PARAMS_BYTES that uses no aliases.
MAX_EXPANDED_SIZE = 2 * MAX_PARAMS_BYTES
MAX_DEPTH = 64  # real params nest about 8 deep (a JSON body template inside a step inside the scenario)

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
        None,
        description="Folder of section notebooks to use instead of the bundled ones (relative to the params file).",
    )


@functools.cache
def _performance_section_model() -> type[BaseModel]:
    """PerformanceConfig (probes) with ``external`` (ingest): the two domains do not import each
    other, so the section's whole config is put together here, one layer up."""
    from ..ingest.config import ExternalPerformanceConfig
    from ..probes.perf import PerformanceConfig

    class PerformanceSectionConfig(PerformanceConfig):
        external: ExternalPerformanceConfig | None = Field(
            None,
            description="Judge the files of load runs made elsewhere (Locust CSV, k6 JSON or summary) "
            "instead of sampling live targets.",
        )

        @model_validator(mode="after")
        def _external_alone(self) -> PerformanceSectionConfig:
            """With ``external`` the files are judged by its own fields: a sampling field set beside it would be
            accepted and ignored (a tolerance of 2% judged at external's 10%)."""
            if self.external is not None:
                beside = sorted(self.model_fields_set - {"external", "enabled"})
                if beside:
                    raise ValueError(
                        f"{beside[0]} does not apply with external (the files are judged by external's own "
                        "fields: tolerance, requests, min_samples, ...); set it under external or remove it"
                    )
            return self

    return PerformanceSectionConfig


def _section_models() -> dict[str, Any]:
    # Imported lazily: each section owns its config model in its own module.
    from ..contract.section import ContractConfig
    from ..probes.config import GoldenPathSectionConfig, IsolationSectionConfig, WebSocketSectionConfig
    from ..suites.config import SuitesConfig

    PerformanceConfig = _performance_section_model()
    return {
        "suites": SuitesConfig,
        "websocket": WebSocketSectionConfig,
        "golden_path": GoldenPathSectionConfig,
        "isolation": IsolationSectionConfig,
        "performance": PerformanceConfig,
        "contract": ContractConfig,
    }


def no_live_target() -> TargetConfig:
    """The ``target`` of params that name none: every enabled section works from files
    (existing JUnit reports, spec files, databases). Its empty ``base_url`` is never contacted."""
    return TargetConfig.model_construct(name="none", base_url="", ws_base_url=None, commit=None)


def sections_needing_target(sections: Mapping[str, Any]) -> list[str]:
    """Enabled sections that talk to the live service (pure): probes do; suites do unless every
    category reads an existing report; contract does unless the candidate's spec is a file or ref."""
    needing = []
    for name in SECTION_ORDER:
        cfg: Any = sections.get(name)
        if not getattr(cfg, "enabled", False):
            continue
        if name == "suites":
            needed = any(not c.reads_existing_report for c in cfg.categories)
        elif name == "contract":
            needed = cfg.candidate_spec is None
        elif name == "performance":
            needed = getattr(cfg, "external", None) is None
        else:
            needed = True
        if needed:
            needing.append(name)
    return needing


class Params(_Strict):
    """Validated params. Built by ``validate_params``; never holds unresolved ``${NAME}``."""

    title: str = Field(..., max_length=300, description="The change under test, as the report's title says it.")
    environment: Literal["demo", "local", "ci", "staging", "production"] = "local"
    description: str = Field("", max_length=20_000, description="What changed and why; shown under the title.")
    target: TargetConfig = Field(
        default_factory=no_live_target,
        description="The service under test. Optional when no enabled section needs a live service.",
    )
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

    @property
    def has_live_target(self) -> bool:
        return bool(self.target.base_url)


class _ParamsLoader(yaml.SafeLoader):
    """SafeLoader that refuses repeated keys and documents whose aliases expand past the caps."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # ``<<: *defaults`` keys may be overridden: that is what merging is for
                key = self.construct_object(key_node, deep=True)
                try:
                    repeated = key in seen
                except TypeError:
                    continue  # an unhashable key: the base class says so
                if repeated:
                    raise yaml.constructor.ConstructorError(
                        problem=f"duplicate key {str(key)[:80]!r}", problem_mark=key_node.start_mark
                    )
                seen.add(key)
        # A non-mapping node: the base class refuses it with its own ConstructorError (typed MappingNode only).
        return super().construct_mapping(node, deep)  # type: ignore[arg-type]


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a node graph whose expansion (what ``resolve_env`` and pydantic walk) is over
    ``MAX_EXPANDED_SIZE`` or ``MAX_DEPTH``, or that refers to itself. Sizes are counted once per
    node (memoised), so this costs the size of the document, not of its expansion."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return []

    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            kids = children(node)
            own = len(node.value) if isinstance(node, yaml.ScalarNode) else 0
            size[key] = 1 + own + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            open_nodes.discard(key)
            if size[key] > MAX_EXPANDED_SIZE:
                raise yaml.constructor.ConstructorError(
                    problem=f"aliases expand to more than {MAX_EXPANDED_SIZE:,} nodes and characters",
                    problem_mark=node.start_mark,
                )
            if depth[key] > MAX_DEPTH:
                raise yaml.constructor.ConstructorError(
                    problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=node.start_mark
                )
            continue
        if key in size:
            continue
        if key in open_nodes:
            raise yaml.constructor.ConstructorError(
                problem="an alias refers to the node that contains it", problem_mark=node.start_mark
            )
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in children(node) if id(k) not in size)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what is wrong and where."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if problem:
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return f"{problem}{where}"
    return " ".join(str(exc).split())[:300]


def _load_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ParamsError(f"{where}: not valid YAML: {_yaml_problem(exc)}") from None
    except RecursionError:
        raise ParamsError(f"{where}: not valid params: nested deeper than {MAX_DEPTH} levels") from None


def read_raw(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):  # a FIFO would block, /dev/zero never ends
            raise ParamsError(f"cannot read params file {path}: not a regular file")
        with path.open("rb") as fh:
            data = fh.read(MAX_PARAMS_BYTES + 1)
    except OSError as exc:
        raise ParamsError(f"cannot read params file {path}: {exc.strerror}") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise ParamsError(f"{path}: larger than {MAX_PARAMS_BYTES // 1024} KiB: not a params file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParamsError(f"{path}: not UTF-8 text (byte {exc.start}, line {line})") from None
    loaded = _load_yaml(text, str(path))
    if not isinstance(loaded, dict):
        raise ParamsError(f"{path}: the top level must be a mapping")
    return loaded


def apply_overrides(raw: Mapping[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` strings; the value is parsed as a YAML scalar/flow value."""
    data = copy.deepcopy(dict(raw))
    for item in overrides:
        key, sep, value_text = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"--set {item!r}: expected key.path=value")
        value = _load_yaml(value_text, f"--set {item[:200]!r}") if value_text else ""
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


def _validation_messages(exc: ValidationError, prefix: str = "") -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join([prefix, *(str(p) for p in err["loc"])] if prefix else [str(p) for p in err["loc"]])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        out.append(_one_line(f"{loc or '<top>'}: {msg}"))
    return out


def _one_line(text: str, limit: int = 300) -> str:
    """A message part that stays on one line and short, whatever key a params file invents."""
    text = text.replace("\r", "\\r").replace("\n", "\\n")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_params(resolved: Mapping[str, Any], *, rereading: bool = False) -> Params:
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
    performance = sections.get("performance")
    if getattr(performance, "stored_baseline", None) and not getattr(performance, "enabled", False):
        # Else the baseline (stability run --baseline) was dropped without a word and the run said PASS.
        errors.append(
            "sections.performance.stored_baseline (stability run --baseline) is set, but the performance "
            "section is switched off (enabled: false): switch it on, or run without a baseline"
        )
    scenario = None
    if scenario_raw is not None:
        from ..probes.scenario import ScenarioConfig

        try:
            scenario = ScenarioConfig.model_validate(scenario_raw)
        except ValidationError as exc:
            errors += _validation_messages(exc, "scenario")
    if data.get("target") is None:
        data.pop("target", None)
        needing = sections_needing_target(sections)
        if needing:
            errors.append(
                f"target: required by the enabled sections {', '.join(needing)} "
                "(target.base_url is the service they check)"
            )
    params = None
    try:
        params = Params.model_validate(data, context={"rereading": rereading})
    except ValidationError as exc:
        errors = _validation_messages(exc) + errors
    if scenario is None and scenario_raw is None:
        for name in SCENARIO_SECTIONS:
            if getattr(sections[name], "enabled", False) and getattr(sections[name], "external", None) is None:
                why = (
                    " (it compares with the baseline given by --baseline)"
                    if name == "performance" and getattr(sections[name], "stored_baseline", None)
                    else ""
                )
                errors.append(f"sections.{name}{why}: needs a 'scenario' block (how users log in and what they do)")
    if errors or params is None:
        shown = errors[:5] + ([f"and {len(errors) - 5} more"] if len(errors) > 5 else [])
        raise ParamsError("invalid params: " + "; ".join(shown))
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
    _refuse_literal_credentials(raw)
    resolved = resolve_env(raw, os.environ if env is None else env)
    return validate_params(resolved, rereading=isinstance(env, LenientEnv)), raw


def _refuse_literal_credentials(raw: Mapping[str, Any]) -> None:
    """Static tokens come from the environment only: a literal one would sit in params.yaml and the run."""
    scenario = raw.get("scenario")
    users = scenario.get("users") if isinstance(scenario, dict) else None
    credentials = users.get("credentials") if isinstance(users, dict) else None
    for i, entry in enumerate(credentials if isinstance(credentials, list) else []):
        for key in ("token", "baseline_token"):
            value = entry.get(key) if isinstance(entry, dict) else None
            if isinstance(value, str) and not ENV_REFERENCE.fullmatch(value.strip()):
                raise ParamsError(
                    f"invalid params: scenario.users.credentials.{i}.{key}: write it as ${{NAME}} and put the "
                    "token in that environment variable (a literal token would be written into the run)"
                )


_SECRET_KEY = re.compile(r"pass(word)?|secret|token|api[_-]?key|authorization|cookie", re.IGNORECASE)
# Settings whose names look secret but whose values say how, not what: "header", "access_token".
_NOT_SECRET_KEYS = frozenset({"ws_token_via", "token_path"})
# An auth scheme before a reference ("Bearer ${TOKEN}", "token ${JUPYTER_TOKEN}") holds no value either.
_SCHEME_AND_REFERENCES = re.compile(r"\s*(?:[A-Za-z][A-Za-z0-9_-]*\s+)?(?:\$\{[A-Za-z_][A-Za-z0-9_]*\}\s*)+")


def redact(raw: Any, key: str = "") -> Any:
    """Params as shown in the report: ``${NAME}`` references stay as written (they hold no value), alone or
    after an auth scheme; another literal value under a secret-looking key is replaced by ``***``."""
    if isinstance(raw, dict):
        return {k: redact(v, str(k)) for k, v in raw.items()}
    if isinstance(raw, list):
        return [redact(v, key) for v in raw]
    if (
        isinstance(raw, str)
        and _SECRET_KEY.search(key)
        and key not in _NOT_SECRET_KEYS
        and not _SCHEME_AND_REFERENCES.fullmatch(raw)
    ):
        return "***"
    return raw
