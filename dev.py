#!/usr/bin/env python3
"""Set up and run gis-grid with nothing but Python >= 3.11 and pip.

    python3 dev.py demo    build the demo community into out/demo.gpkg, summarise it and serve
                           the map pages at http://127.0.0.1:8000 ('demo --no-serve': build only)
    python3 dev.py test    check the import contracts (import-linter), then run the whole test suite
    python3 dev.py bench   run the benchmarks (figures go to bench/RESULTS.md);
                           'bench postgis' runs the PostGIS-beside-embedded benchmark,
                           'bench layers' linking, CCTV holes, Gi* and KDE at city scale,
                           'bench rebalance' the rebalancer beside GerryChain, spopt, METIS,
                           'bench web' tiles beside tipg and bare ST_AsMVT, lookups under load,
                           'bench lookup-gpkg' map clicks on the embedded store under wrk,
                           'bench cases' case intake, indicators, the sweep and Open311,
                           'bench load' 60 s of mixed requests at 200/s on one server,
                           'bench pages' cold starts of the map pages (fresh server and browser),
                           'bench review' the weekly review of the demo and of a city street,
                           'bench planner' the planner's previews and its page's weight,
                           'bench scale' 10M incidents linked on a LocalCluster, hot spots per community

Each command first creates .venv (once) and installs the project into it again
whenever pyproject.toml changes: the demo needs the runtime only, the tests and
benchmarks add their extras. Extra arguments go to the underlying command.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".installed"


def ensure_env(extras: str) -> None:
    """Create .venv once; install the project with ``extras`` when pyproject.toml changed.

    The stamp remembers which extras are installed for this pyproject.toml, so
    the demo (runtime only) after the tests (test extras) installs nothing.
    """
    if sys.version_info < (3, 11):
        sys.exit(f"gis-grid needs Python >= 3.11; this is {sys.version.split()[0]}")
    if not PY.exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    project = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    wanted = {e for e in extras.split(",") if e}
    try:
        stamp = json.loads(STAMP.read_text())
    except (OSError, ValueError):
        stamp = {}
    if stamp.get("project") == project and wanted <= set(stamp.get("extras", [])):
        return
    if stamp.get("project") == project:
        wanted |= set(stamp.get("extras", []))
    spec = f"{ROOT}[{','.join(sorted(wanted))}]" if wanted else str(ROOT)
    print(
        f"installing gis-grid{'[' + ','.join(sorted(wanted)) + ']' if wanted else ''} into .venv …",
        flush=True,
    )
    run([PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    run([PY, "-m", "pip", "install", "--quiet", "-e", spec])
    STAMP.write_text(json.dumps({"project": project, "extras": sorted(wanted)}))


def port_in_use(port: int) -> bool:
    """Whether something already listens on 127.0.0.1:port (a demo server still running)."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def run(cmd: list, **kwargs) -> None:
    code = subprocess.call([str(c) for c in cmd], cwd=ROOT, **kwargs)
    if code:
        sys.exit(code)


def main(argv: list[str]) -> None:
    if not argv or argv[0] not in ("demo", "test", "bench"):
        sys.exit(__doc__)
    task, rest = argv[0], argv[1:]
    if task == "demo":
        serve = "--no-serve" not in rest
        rest = [a for a in rest if a != "--no-serve"]
        if serve and port_in_use(8000):
            sys.exit(
                "port 8000 is in use — is the demo already serving? Its links still work: "
                "stop it (Ctrl-C in its terminal) before building the demo again (a rebuild "
                "makes new tokens), or run 'python3 dev.py demo --no-serve'"
            )
        ensure_env("")
        run([BIN / "gis-grid", "demo", "--out", "out/demo.gpkg", *rest])
        if serve:
            run([BIN / "gis-grid", "serve", "out/demo.gpkg"])
    elif task == "test":
        ensure_env("test")
        # the import contracts in pyproject.toml first: imports point one way, no cycles
        run([BIN / "lint-imports", "--no-cache", "--no-logo"])
        run(
            [
                PY,
                "-m",
                "pytest",
                "--doctest-modules",
                "gis_grid",
                "layers",
                "api",
                "tiles",
                "tests",
                *rest,
            ]
        )
    else:
        ensure_env("test,bench")
        if rest[:1] == ["postgis"]:
            run([PY, "bench/bench_postgis.py", *rest[1:]])
        elif rest[:1] == ["layers"]:
            run([PY, "bench/bench_layers.py", *rest[1:]])
        elif rest[:1] == ["rebalance"]:
            run([PY, "bench/bench_rebalance.py", *rest[1:]])
        elif rest[:1] == ["web"]:
            run([PY, "bench/bench_web.py", *rest[1:]])
        elif rest[:1] == ["lookup-gpkg"]:
            run([PY, "bench/bench_lookup_gpkg.py", *rest[1:]])
        elif rest[:1] == ["cases"]:
            run([PY, "bench/bench_cases.py", *rest[1:]])
        elif rest[:1] == ["load"]:
            run([PY, "bench/bench_load.py", *rest[1:]])
        elif rest[:1] == ["pages"]:
            run([PY, "bench/bench_pages.py", *rest[1:]])
        elif rest[:1] == ["review"]:
            run([PY, "bench/bench_review.py", *rest[1:]])
        elif rest[:1] == ["planner"]:
            run([PY, "bench/bench_planner.py", *rest[1:]])
        elif rest[:1] == ["scale"]:
            run([PY, "bench/bench_scale.py", *rest[1:]])
        else:
            run([PY, "bench/bench_foundation.py", *rest])


if __name__ == "__main__":
    main(sys.argv[1:])
