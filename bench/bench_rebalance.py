"""Rebalancing beside the redistricting tools (issue #6 targets).

Run with ``python3 dev.py bench rebalance``. In one script, on the same atoms,
the same adjacency (cells sharing an edge), the same workload (households)
and the same tolerance (±5%), starting from the same current plan:

- gis-grid's rebalancer (``gis_grid.planning.partition.partition``);
- GerryChain ReCom from the current plan (pairs of grids merged and re-split
  within ε of the target by random spanning trees), run for the same time
  budget as the target (60 s) or until every grid is within the tolerance,
  keeping the best plan it visited;
- spopt's SKATER (spanning-tree pruning on the atoms' centres, regions of at
  least half the mean number of atoms) — a regionaliser with no workload
  target, the closest spopt comes — and AZP from the current plan (workload
  as its attribute); each in a child process stopped after ``--peer-limit``
  seconds (both are pure Python over all pairs of atoms);
- METIS (pymetis, k-way with contiguity, vertex weights = workload) for
  speed and edge cut.

Each plan is scored the same way: max deviation from the mean workload,
contiguity of every grid, mean Polsby–Popper of the grids (from the cells),
households moved from the current plan (new grids matched one-to-one to the
current grids by shared households), edge cut, and time. Datasets: (a) the
demo community (8 areas from 30 courtyards) and (b) a parent of 10,000
buildings in 100 courtyards (``gis_grid.sources.demo.planning_area``).

Appends a section to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import warnings
from pathlib import Path

import networkx as nx
import numpy as np

from gis_grid.planning.partition import Atoms, households_moved, partition, polsby_popper
from gis_grid.planning.rebalance import atoms_of
from gis_grid.planning.regroup import current_state
from gis_grid.sources.demo import generate, planning_area
from gis_grid.store import ChangeSet
from gis_grid.store.gpkg import GeoPackageStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_foundation import RESULTS, machine  # noqa: E402

warnings.filterwarnings("ignore")
TOLERANCE = 0.05


def score(atoms: Atoms, labels: np.ndarray, seconds: float, name: str, extra: str = "") -> dict:
    labels = np.unique(np.asarray(labels), return_inverse=True)[1]
    k = int(labels.max()) + 1
    loads = np.bincount(labels, weights=atoms.weight, minlength=k)
    target = atoms.weight.sum() / len(atoms.groups)
    contiguous = all(
        nx.is_connected(atoms.graph.subgraph(np.flatnonzero(labels == g).tolist()))
        for g in range(k)
    )
    u, v = np.array(list(atoms.graph.edges())).T
    return {
        "method": name,
        "k": k,
        "max_dev": float(np.max(np.abs(loads - target)) / target),
        "contiguous": contiguous,
        "pp": float(np.mean(polsby_popper(atoms, labels, k))),
        "moved": households_moved(atoms, labels),
        "cut": int((labels[u] != labels[v]).sum()),
        "seconds": seconds,
        "extra": extra,
    }


def ours(atoms: Atoms) -> dict:
    t = time.perf_counter()
    result = partition(atoms, len(atoms.groups), tolerance=TOLERANCE)
    return score(atoms, result.labels, time.perf_counter() - t, "gis-grid")


def recom(atoms: Atoms, budget: float, seed: int = 0) -> dict:
    """ReCom from the current plan, its ε shrinking to the worst deviation of the plan.

    With ε fixed at the tolerance, ReCom cannot leave an unbalanced plan (no
    pair of grids far off the mean splits into two halves within ε; each
    attempt costs up to 1,000 spanning trees). Starting ε at the plan's own
    worst deviation makes every pair splittable, and shrinking it to each new
    plan's worst deviation walks the plan towards balance — ReCom used as a
    balancer, as fairly as it can be.
    """
    import random
    from functools import partial

    from gerrychain import Graph, Partition
    from gerrychain.proposals import recom as recom_step
    from gerrychain.tree import bipartition_tree
    from gerrychain.updaters import Tally

    graph = nx.Graph()
    for i in range(len(atoms.codes)):
        graph.add_node(i, workload=float(atoms.weight[i]))
    graph.add_edges_from(atoms.graph.edges())
    t = time.perf_counter()
    g = Graph.from_networkx(graph)
    start = {i: int(atoms.start[i]) for i in range(len(atoms.codes))}
    plan = Partition(g, start, updaters={"population": Tally("workload", alias="population")})
    target = atoms.weight.sum() / len(atoms.groups)
    tree = partial(bipartition_tree, max_attempts=50, warn_attempts=10**9)

    def worst(p):
        loads = np.array(list(p["population"].values()))
        return float(np.max(np.abs(loads - target)) / target)

    best, best_dev = plan, worst(plan)
    steps = failed = 0
    rng = random.Random(seed)
    while time.perf_counter() - t < budget and best_dev > TOLERANCE:
        epsilon = max(TOLERANCE, worst(plan))
        try:
            plan = recom_step(
                plan,
                pop_col="workload",
                pop_target=target,
                epsilon=epsilon,
                bipartition_tree_fn=tree,
                rng=rng,
            )
        except Exception:  # no balanced split of that pair within max_attempts trees
            failed += 1
        steps += 1
        dev = worst(plan)
        if dev < best_dev:
            best, best_dev = plan, dev
    seconds = time.perf_counter() - t
    labels = np.array([best.assignment[i] for i in range(len(atoms.codes))])
    return score(atoms, labels, seconds, "GerryChain ReCom", f"{steps:,} steps, {failed:,} failed")


def skater(atoms: Atoms) -> dict:
    import geopandas as gpd
    import libpysal
    import shapely
    from spopt.region import Skater

    t = time.perf_counter()
    centres = shapely.centroid(atoms.cells)
    frame = gpd.GeoDataFrame(
        {"x": shapely.get_x(centres), "y": shapely.get_y(centres), "w": atoms.weight},
        geometry=atoms.cells,
    )
    neighbours = {i: list(atoms.graph.neighbors(i)) for i in range(len(atoms.codes))}
    w = libpysal.weights.W(neighbours, silence_warnings=True)
    k = len(atoms.groups)
    model = Skater(frame, w, ["x", "y"], n_clusters=k, floor=int(len(atoms.codes) / k / 2))
    model.solve()
    return score(atoms, model.labels_, time.perf_counter() - t, "spopt SKATER")


def azp(atoms: Atoms, seed: int = 0) -> dict:
    import geopandas as gpd
    import libpysal
    from spopt.region import AZP

    t = time.perf_counter()
    frame = gpd.GeoDataFrame({"w": atoms.weight}, geometry=atoms.cells)
    neighbours = {i: list(atoms.graph.neighbors(i)) for i in range(len(atoms.codes))}
    w = libpysal.weights.W(neighbours, silence_warnings=True)
    model = AZP(
        frame,
        w,
        ["w"],
        n_clusters=len(atoms.groups),
        random_state=seed,
        initial_labels=atoms.start.copy(),
    )
    model.solve()
    return score(atoms, model.labels_, time.perf_counter() - t, "spopt AZP")


def metis(atoms: Atoms) -> dict:
    import pymetis

    n = len(atoms.codes)
    adjacency = [list(atoms.graph.neighbors(i)) for i in range(n)]
    weights = np.maximum(np.round(atoms.weight).astype(int), 1).tolist()
    t = time.perf_counter()
    options = pymetis.Options(contig=1)
    _cut, parts = pymetis.part_graph(
        len(atoms.groups), adjacency=adjacency, vweights=weights, options=options
    )
    return score(atoms, np.asarray(parts), time.perf_counter() - t, "METIS (pymetis)")


def _run(queue, func, atoms):
    queue.put(func(atoms))


def limited(func, atoms: Atoms, seconds: float, name: str) -> dict:
    """Run a peer in a child process; report it as unfinished after ``seconds``."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_run, args=(queue, func, atoms))
    t = time.perf_counter()
    child.start()
    child.join(seconds)
    if child.is_alive():
        child.terminate()
        child.join()
        return {
            "method": name,
            "k": 0,
            "max_dev": float("nan"),
            "contiguous": False,
            "pp": float("nan"),
            "moved": 0,
            "cut": 0,
            "seconds": time.perf_counter() - t,
            "extra": f"did not finish in {seconds:.0f} s",
            "unfinished": True,
        }
    return queue.get()


def dataset(which: str, root: Path):
    path = root / f"{which}.gpkg"
    if which == "demo":
        data = generate()
        parent = data.grids.loc[data.grids.level == "community", "code"].iloc[0]
    else:
        data = planning_area(side=100, blocks=10)
        parent = data.grids["code"].iloc[1]
    with GeoPackageStore(path) as store:
        store.apply(ChangeSet(data.grids, data.staff, data.assignments))
        t = time.perf_counter()
        now = current_state(store, parent[:12])
        atoms = atoms_of(store, now, parent)
        build = time.perf_counter() - t
    return atoms, build, path, parent


def end_to_end(path: Path, parent: str) -> tuple[float, float, dict]:
    """``propose`` (cells, partition, rewrite built) and ``accept`` (checked, written)."""
    from gis_grid.planning.rebalance import accept, propose

    with GeoPackageStore(path) as store:
        t = time.perf_counter()
        metrics = propose(store, parent)
        proposed = time.perf_counter() - t
        t = time.perf_counter()
        accept(store, metrics["proposal"])
        accepted = time.perf_counter() - t
        problems = store.validate()
    metrics.pop("_change")
    metrics["problems_after"] = len(problems.loc[problems["kind"] != "no_staff"])
    return proposed, accepted, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="ReCom time budget (s)")
    parser.add_argument(
        "--peer-limit", type=float, default=300.0, help="time limit of SKATER and AZP (s)"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    lines = [
        f"## Rebalancing beside GerryChain, spopt and METIS — {dt.date.today().isoformat()}",
        "",
        f"Machine: {machine()}. `python3 dev.py bench rebalance`; same atoms, adjacency, "
        f"workload (households) and tolerance (±{TOLERANCE:.0%}) for every method, all "
        "started from (or scored against) the current plan.",
    ]

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        for which, title in (
            ("demo", "(a) the demo community: 8 areas from 30 courtyards (3,211 households)"),
            ("big", "(b) one parent of 10,000 buildings in 100 courtyards"),
        ):
            atoms, build, path, parent = dataset(which, Path(tmp))
            start = score(atoms, atoms.start, 0.0, "current plan")
            rows = [start, ours(atoms), metis(atoms)]
            rows.append(limited(skater, atoms, args.peer_limit, "spopt SKATER"))
            rows.append(limited(azp, atoms, args.peer_limit, "spopt AZP"))
            rows.append(recom(atoms, args.budget))
            say()
            say(f"### {title}")
            say()
            say(
                f"{len(atoms.codes):,} atoms, {atoms.graph.number_of_edges():,} neighbour links, "
                f"{int(atoms.households.sum()):,} households; cells and adjacency built in "
                f"{build:.2f} s (shared by every method, not in the times below)."
            )
            say()
            say(
                "| method | max deviation | contiguous | Polsby–Popper mean | households moved "
                "| edge cut | time | note |"
            )
            say("|---|---:|---|---:|---:|---:|---:|---|")
            for r in rows:
                if r.get("unfinished"):
                    say(
                        f"| {r['method']} | – | – | – | – | – | > {r['seconds']:.0f} s "
                        f"| {r['extra']} |"
                    )
                    continue
                say(
                    f"| {r['method']} | {r['max_dev']:.1%} | {'yes' if r['contiguous'] else 'NO'} "
                    f"| {r['pp']:.3f} | {r['moved']:,} | {r['cut']:,} | {r['seconds']:.2f} s "
                    f"| {r['extra']} |"
                )
            proposed, accepted, metrics = end_to_end(path, parent)
            say()
            say(
                f"End to end through the store (GeoPackage): `propose` {proposed:.2f} s (cells, "
                f"partition, new grids and codes), `accept` {accepted:.2f} s (checked and "
                f"written as one revision); validation problems after: "
                f"{metrics['problems_after']}; max deviation {metrics['max_deviation']:.1%}, "
                f"households moved {metrics['households_moved']:,}."
            )
            if metrics["notes"]:
                say(f"Note: {metrics['notes'][0]}")
    if not args.no_write:
        with RESULTS.open("a", encoding="utf-8") as f:
            f.write("\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
