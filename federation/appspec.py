"""``spillover.toml``: the app spec, validated with messages that name key, value and rule."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from federation.errors import InvalidConfig

NAME_PATTERN = r"^[a-z0-9-]{1,63}$"
# A function a task may call: a method name; never private (``_x``), never ``load``.
FUNCTION_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
FunctionName = Annotated[str, StringConstraints(pattern=FUNCTION_PATTERN)]


class _Section(BaseModel):
    # strict: `spillover_after = false` or `replica_concurrency = "4"` is an error, not a coercion.
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class AppSection(_Section):
    name: str = Field(pattern=NAME_PATTERN)
    handler: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    # The functions tasks may call. Without the list: the methods defined in the handler class
    # itself (``regional/handler.py``). With it, the edge refuses any other name at once (404).
    functions: tuple[FunctionName, ...] | None = Field(default=None, strict=False)

    @model_validator(mode="after")
    def _callable_names(self) -> AppSection:
        if self.functions is None:
            return self
        if not self.functions:
            raise ValueError("functions = []: name at least one function, or leave it out")
        if "load" in self.functions:
            raise ValueError("functions: 'load' is called once per replica, never by a task")
        if len(set(self.functions)) != len(self.functions):
            raise ValueError(f"functions = {list(self.functions)}: a name is listed twice")
        return self


class ScalingSection(_Section):
    # Names as in cerebrium.toml, so its users feel at home.
    replica_concurrency: int = Field(default=4, ge=1, le=1024)
    scaling_metric: Literal[
        "concurrency_utilization", "requests_per_second", "cpu_utilization", "memory_utilization"
    ] = "concurrency_utilization"
    scaling_target: int = Field(default=70, ge=1, le=100)
    scaling_buffer: int = Field(default=0, ge=0, le=1000)
    min_replicas: int = Field(default=0, ge=0, le=1000)
    max_replicas: int = Field(default=8, ge=1, le=1000)
    cooldown: float = Field(default=60, ge=0, le=86400)
    queue_time_threshold: float = Field(default=2.0, gt=0, le=86400)
    # Most round trip (seconds) to a region whose warm replicas may take this app's overflow
    # instead of new replicas here (federation/absorb.py).
    latency_budget: float = Field(default=0.15, ge=0, le=10)
    response_grace_period: float = Field(default=3600, gt=0, le=7 * 86400)
    max_runtime: float = Field(default=43200, gt=0, le=7 * 86400)
    max_payload_bytes: int = Field(default=1 << 30, ge=1, le=1 << 30)
    max_attempts: int = Field(default=3, ge=1, le=100)

    @model_validator(mode="after")
    def _min_le_max(self) -> ScalingSection:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"min_replicas = {self.min_replicas} must be ≤ max_replicas = {self.max_replicas}"
            )
        return self


RegionName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]


class PlacementSection(_Section):
    # TOML and JSON give lists; strict mode would want a tuple.
    regions: tuple[RegionName, ...] = Field(default=(), strict=False)  # empty: every region
    spillover_after: float = Field(default=0.5, ge=0, le=86400)


class QueueSection(_Section):
    # Past max_depth queued tasks in one home partition, submits answer 429 queue_full: a queue
    # in front of GPUs pushes back instead of growing until etcd is full.
    max_depth: int = Field(default=10_000, ge=1, le=10_000_000)
    result_retention: float = Field(default=86_400, ge=60, le=30 * 86_400)


class AppSpec(_Section):
    app: AppSection
    scaling: ScalingSection = ScalingSection()
    placement: PlacementSection = PlacementSection()
    queue: QueueSection = QueueSection()

    @property
    def name(self) -> str:
        return self.app.name


def describe(error: ValidationError) -> str:
    """One line per problem: ``scaling.replica_concurrency = 0: must be ≥ 1``."""
    lines = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        rule = _RULES.get(e["type"], e["msg"])
        if "{" in rule:
            rule = rule.format(**(e.get("ctx") or {}))
        value = e.get("input")
        if e["type"] == "missing" or isinstance(value, dict):
            lines.append(f"{key}: {rule}")
        else:
            lines.append(f"{key} = {value!r}: {rule}")
    return "; ".join(lines)


_RULES = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "greater_than_equal": "must be ≥ {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be ≤ {le}",
    "less_than": "must be < {lt}",
    "string_pattern_mismatch": "must match {pattern}",
    "literal_error": "must be one of {expected}",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "string_type": "must be a string",
    "bool_type": "must be true or false",
    "model_type": "must be a table",
    "tuple_type": "must be a list",
    "value_error": "{error}",
}


def parse_spec(data: dict[str, Any]) -> AppSpec:
    try:
        return AppSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidConfig(describe(e)) from None


def parse_toml(text: str) -> AppSpec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidConfig(f"spillover.toml is not valid TOML: {e}") from None
    return parse_spec(data)
