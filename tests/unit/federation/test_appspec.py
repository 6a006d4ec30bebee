import pytest

from federation.appspec import parse_spec, parse_toml
from federation.errors import InvalidConfig

SPEC_EXAMPLE = """
[app]
name = "sentiment"
handler = "examples.sentiment:Model"

[scaling]
replica_concurrency = 4
scaling_metric = "concurrency_utilization"
scaling_target = 70
scaling_buffer = 0
min_replicas = 0
max_replicas = 8
cooldown = 60
queue_time_threshold = 2.0
response_grace_period = 3600
max_runtime = 43200
max_payload_bytes = 1073741824

[placement]
regions = ["us-east-1", "eu-west-1", "ap-south-1"]
spillover_after = 0.5

[queue]
max_depth = 10000
result_retention = 86400
"""


def test_the_spec_example_parses() -> None:
    spec = parse_toml(SPEC_EXAMPLE)
    assert spec.name == "sentiment"
    assert spec.scaling.replica_concurrency == 4
    assert spec.placement.regions == ("us-east-1", "eu-west-1", "ap-south-1")
    assert spec.queue.max_depth == 10_000 and spec.queue.result_retention == 86_400


def test_defaults_fill_missing_sections() -> None:
    spec = parse_spec({"app": {"name": "demo", "handler": "spillover.demo.app:Model"}})
    assert spec.scaling.scaling_target == 70 and spec.placement.spillover_after == 0.5
    assert spec.app.functions is None  # the handler class's own methods


def test_functions_list_the_callable_names() -> None:
    spec = parse_toml('[app]\nname = "demo"\nhandler = "m:C"\nfunctions = ["predict", "embed"]')
    assert spec.app.functions == ("predict", "embed")
    assert parse_spec(spec.model_dump(mode="json")) == spec  # as stored in etcd


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("[scaling]\nreplica_concurrency = 0", "scaling.replica_concurrency = 0: must be ≥ 1"),
        ("[scaling]\nscaling_target = 150", "scaling.scaling_target = 150: must be ≤ 100"),
        ("[scaling]\nreplicas = 3", "scaling.replicas = 3: unknown key"),
        ("[scaling]\nscaling_metric = 'gpu'", "scaling.scaling_metric = 'gpu': must be one of"),
        ("[placement]\nregions = ['EU West']", "placement.regions.0 = 'EU West': must match"),
        (
            "[scaling]\nmin_replicas = 9\nmax_replicas = 2",
            "min_replicas = 9 must be ≤ max_replicas",
        ),
        ("[extra]\nx = 1", "extra: unknown key"),
        ("[queue]\nmax_depth = 0", "queue.max_depth = 0: must be ≥ 1"),
        ("[queue]\nresult_retention = 5", "queue.result_retention = 5: must be ≥ 60"),
        ("[queue]\nmax_depth = '9'", "queue.max_depth = '9': must be an integer"),
        ("functions = []", "app: functions = []: name at least one function"),
        ("functions = ['load']", "app: functions: 'load' is called once per replica"),
        ("functions = ['a', 'a']", "app: functions = ['a', 'a']: a name is listed twice"),
        ("functions = ['_x']", "app.functions.0 = '_x': must match"),
        ("functions = 'predict'", "app.functions = 'predict': must be a list"),
    ],
)
def test_bad_values_name_key_value_and_rule(patch: str, expected: str) -> None:
    text = '[app]\nname = "demo"\nhandler = "m:C"\n' + patch
    with pytest.raises(InvalidConfig) as e:
        parse_toml(text)
    assert expected in e.value.message


def test_missing_and_malformed() -> None:
    with pytest.raises(InvalidConfig, match=r"app: required key is missing"):
        parse_toml("[scaling]\nmin_replicas = 1")
    with pytest.raises(InvalidConfig, match="not valid TOML"):
        parse_toml("[app\nname=")
    with pytest.raises(InvalidConfig, match=r"app.name = 'Bad_Name': must match"):
        parse_toml('[app]\nname = "Bad_Name"\nhandler = "m:C"')
