"""``spillover init NAME``: a new app to start from — ``NAME/app.py`` (a handler class: ``load()``
and one function) and ``NAME/spillover.toml`` — ready for ``spillover deploy``.

``NAME`` is the app's name and also the Python package its regions import the handler from
(``NAME.app:Model``), from their ``app_root``: the directory that holds ``NAME/``. One app_root
holds any number of apps side by side that way.
"""

from __future__ import annotations

import argparse
import importlib.util
import keyword
import re
import sys
from pathlib import Path

from federation.appspec import parse_toml

# An app name (federation.appspec.NAME_PATTERN) that is a Python package name too: no '-'.
PACKAGE_NAME = r"[a-z][a-z0-9]{0,62}"

APP = '''"""{name}: a Spillover app. Each replica creates one Model, calls load() once, then runs
one method per request: POST /v1/apps/{name}/predict calls Model.predict."""

from __future__ import annotations

import json
from typing import Any

from spillover import Context


class Model:
    def load(self) -> None:
        """Once per replica, before it takes work: load weights here (this one is a line)."""
        self.weight = 2.0

    def predict(self, payload: bytes, ctx: Context) -> dict[str, Any]:
        """JSON {{"inputs": [numbers]}} -> {{"outputs": [numbers]}}. A dict is answered as JSON;
        bytes and str are answered as they are."""
        inputs = json.loads(payload or b"{{}}").get("inputs", [])
        ctx.log(f"{{len(inputs)}} inputs")
        return {{"outputs": [self.weight * x for x in inputs]}}
'''

SPEC = """# {name}: deploy with `spillover deploy {name}/spillover.toml`. Each region imports the
# handler ({name}/app.py, as {name}.app) from its app_root: the directory that holds {name}/.

[app]
name = "{name}"
handler = "{name}.app:Model"

[scaling]
replica_concurrency = 1  # requests one replica runs at once
min_replicas = 1
max_replicas = 2

[placement]
regions = []  # every region
spillover_after = 0.5  # seconds queued in its home region before another region may take it
"""


def scaffold(name: str, where: Path) -> Path:
    """Write ``where/name/`` (which must not exist); raises ``ValueError`` naming what is wrong
    with ``name`` and ``FileExistsError`` rather than overwrite."""
    if keyword.iskeyword(name):
        raise ValueError(f"{name!r} is a Python keyword: it cannot name the app's package")
    if not re.fullmatch(PACKAGE_NAME, name):
        raise ValueError(
            f"{name!r}: the app's name is also its Python package ({name}.app:Model), so "
            "lowercase letters and digits only, starting with a letter (e.g. 'sentiment')"
        )
    if importlib.util.find_spec(name) is not None:
        raise ValueError(f"{name!r} is a Python module already here: the regions would import "
                         "that one, not the app's; pick another name")  # fmt: skip
    spec = SPEC.format(name=name)
    parse_toml(spec)  # what `spillover deploy` checks: a template out of date fails here
    app = where / name
    app.mkdir()  # FileExistsError: never overwrite
    (app / "app.py").write_text(APP.format(name=name))
    (app / "spillover.toml").write_text(spec)
    return app


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="spillover init", description=__doc__)
    ap.add_argument("name", metavar="NAME", help="the app's name, e.g. sentiment")
    args = ap.parse_args(argv)
    try:
        app = scaffold(args.name, Path.cwd())
    except ValueError as e:
        ap.error(str(e))
    except FileExistsError:
        sys.exit(f"spillover init: {args.name}/ exists already; nothing was written")
    name = args.name
    print(f"""Created {name}/app.py (the handler, {name}.app:Model) and {name}/spillover.toml.

A region imports {name}.app from its app_root, the directory that holds {name}/ ({app.parent}):
  spillover up --app {name}/spillover.toml        # a local federation serving it, from here
or, with a federation already running (spillover up started in this directory):
  spillover deploy {name}/spillover.toml
then:
  spillover run {name}/predict '{{"inputs": [1, 2, 3]}}'   # {{"outputs": [2.0, 4.0, 6.0]}}
Elsewhere, set app_root in each region.toml to the directory that holds {name}/, or install
{name} as a package on the regions' machines.""")
