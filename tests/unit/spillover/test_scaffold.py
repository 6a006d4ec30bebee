"""``spillover init NAME``: an app that the spec accepts and a replica can run, written only
where nothing is; names that could not be imported as the app's package are refused."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from federation.appspec import parse_toml
from regional.handler import Context, function_of, load_handler
from spillover.scaffold import main, scaffold


@pytest.fixture
def importable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``tmp_path`` as a region's app_root: on sys.path, the app's modules forgotten after."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m == "hello" or m.startswith("hello.")]:
        del sys.modules[name]


async def test_the_app_passes_the_spec_and_its_function_answers(importable: Path) -> None:
    app = scaffold("hello", importable)
    assert sorted(p.name for p in app.iterdir()) == ["app.py", "spillover.toml"]
    spec = parse_toml((app / "spillover.toml").read_text())
    assert spec.name == "hello" and spec.app.handler == "hello.app:Model"
    assert spec.placement.regions == ()  # every region
    model = load_handler(spec.app.handler)  # as a replica does: load() called
    lines: list[object] = []
    ctx = Context("t1", asyncio.get_running_loop(), lines.append)
    assert function_of(model, "predict")(b'{"inputs": [1, 2.5]}', ctx) == {"outputs": [2.0, 5.0]}
    assert lines == [("log", "2 inputs")]


def test_it_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "hello").mkdir()
    (tmp_path / "hello" / "app.py").write_text("mine")
    with pytest.raises(FileExistsError):
        scaffold("hello", tmp_path)
    assert (tmp_path / "hello" / "app.py").read_text() == "mine"
    assert not (tmp_path / "hello" / "spillover.toml").exists()


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("my-app", "lowercase letters and digits only"),  # an app name, but no package name
        ("Hello", "lowercase letters and digits only"),
        ("2fast", "starting with a letter"),
        ("a" * 64, "lowercase letters and digits only"),
        ("class", "is a Python keyword"),
        ("json", "is a Python module already"),  # the regions would import the stdlib's
        ("spillover", "is a Python module already"),
    ],
)
def test_names_that_could_not_be_the_apps_package_are_refused(
    tmp_path: Path, name: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        scaffold(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_command_says_what_to_run_next_and_refuses_a_second_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    main(["hello"])
    out = capsys.readouterr().out
    assert "spillover deploy hello/spillover.toml" in out
    assert f"app_root, the directory that holds hello/ ({tmp_path})" in out
    with pytest.raises(SystemExit, match="hello/ exists already; nothing was written"):
        main(["hello"])
