"""``spillover up``: its configs built as the config models and written as TOML that loads back
into the same models, with only the keys that were set (the processes keep their defaults); the
demo app from the package; what it refuses before it starts anything."""

from __future__ import annotations

import argparse
import importlib.util
import tomllib
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from federation.appspec import parse_toml
from federation.etcd_tls import EtcdTls
from federation.topology import load_config
from regional.config import RegionConfig
from spillover.local import up
from spillover.local.configs import (
    DEFAULT_REGIONS,
    QUOTA,
    Region,
    edge_config,
    etcd_config,
    parse_region,
    region_config,
    write_toml,
)

REGIONS = [parse_region(r) for r in DEFAULT_REGIONS]


def test_a_region_config_round_trips_and_follows_every_other_region(tmp_path: Path) -> None:
    tls = EtcdTls(ca_file=tmp_path / "ca.pem", cert_file=tmp_path / "agent.pem",
                  key_file=tmp_path / "agent.key")  # fmt: skip
    etcd = etcd_config(["https://127.0.0.1:2379"], tls)
    config = region_config(REGIONS[1], REGIONS, tmp_path / "data", etcd, tmp_path / "apps")
    path = write_toml(config, tmp_path / "eu-west-1.toml")
    assert load_config(RegionConfig, path, {}) == config
    assert config.peers == ("us-east-1", "ap-south-1") and config.etcd.quota_bytes == QUOTA
    written = tomllib.loads(path.read_text())
    assert written["etcd"]["tls"]["cert_file"] == str(tmp_path / "agent.pem")
    assert "lease_ttl" not in written and "autoscale" not in written  # the agent's defaults


def test_an_edge_config_round_trips(tmp_path: Path) -> None:
    config = edge_config(REGIONS, tmp_path, etcd_config(["http://127.0.0.1:2379"], None), 8080,
                         auth=False)  # fmt: skip
    path = write_toml(config, tmp_path / "edge.toml")
    assert load_config(EdgeConfig, path, {}) == config
    assert config.region == "us-east-1" and [r.name for r in config.regions] == [
        r.name for r in REGIONS
    ]  # fmt: skip
    assert "tls" not in tomllib.loads(path.read_text())["etcd"]


def test_regions_parse_and_bad_ones_say_why() -> None:
    assert parse_region("eu-west-1=53.3,-6.3") == Region("eu-west-1", 53.3, -6.3)
    with pytest.raises(argparse.ArgumentTypeError, match="expected name=lat,lon"):
        parse_region("eu-west-1")
    with pytest.raises(argparse.ArgumentTypeError, match="in range"):
        parse_region("eu-west-1=95,0")
    with pytest.raises(argparse.ArgumentTypeError, match="in range"):
        parse_region("EU=1,1")


def test_up_says_what_the_demo_needs_and_which_app_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before it starts anything: an app that is not there, and the demo without torch (its
    replicas would fail to load, again and again, until the ready timeout)."""
    with pytest.raises(SystemExit):
        up.main(["--app", str(tmp_path / "nowhere.toml"), "--data", str(tmp_path)])
    assert "nowhere.toml" in capsys.readouterr().err
    found = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else found(name, *a)
    )
    with pytest.raises(SystemExit):
        up.main(["--data", str(tmp_path)])
    assert "pip install 'spillover[model]'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_demo_spec_ships_in_the_package() -> None:
    spec = parse_toml(up.demo_spec())
    assert spec.name == "demo" and spec.app.handler == "spillover.demo.app:Model"
