"""Partitioning: regroup a parent's atoms into k contiguous grids of comparable work.

任务相当、方便管理、界定清晰 — comparable workload, easy to manage, clearly
bounded. A parent's *atoms* are its grandchildren (courtyards of a community's
areas, buildings of an area's courtyards); they are never split. The parent
is cut into one cell per atom (:func:`gis_grid.planning.regroup.atom_cells`), cells that
share an edge are neighbours, and the new grids are unions of cells — so
they tile the parent and validate clean by construction.

The planner's starting plan is where grid workers are today, so the
rebalancer moves as little as it can:

1. **Start from the current plan.** With k different from the number of
   grids now, the heaviest grid is halved (grown from its far edge) or the
   lightest merged into its lightest neighbour until there are k.
2. **Minimum-cost flow.** Each grid may end anywhere in the tolerance band
   around the mean; a minimum-cost flow over the grids' adjacency
   (networkx) finds how much workload must cross each shared boundary so
   that every grid lands in the band while the least workload moves.
3. **Realise the flow** by moving boundary atoms across those boundaries,
   never cutting a grid in two (a move that would is skipped).
4. **Polish**: single-atom moves that shrink the worst deviation.
5. **Narrow**: once every grid is in the band, narrow it (×0.6 at a time,
   each step again the least movement, down to a fifth of the tolerance)
   while whole atoms allow and the grids keep four fifths of their
   compactness, so the busiest grid carries as little extra as it can;
   ``narrow=False`` stops at the tolerance with the fewest households moved.
6. **Compact**: atoms that border another grid more than their own move
   there when both stay within the band reached (Polsby–Popper rises).

The proposal the CLI stores (:mod:`gis_grid.planning.rebalance`) is the
rewrite a :class:`Result` makes, plus its metrics.
"""

from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
import shapely
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import breadth_first_order, minimum_spanning_tree

from gis_grid.domain.errors import InputError
from gis_grid.domain.messages import say
from gis_grid.geo.crs import WGS84, reproject
from gis_grid.geo.tessellation import GRID

#: Workload terms a planner can weigh that every store knows; any layer name counts
#: that layer's features (the last ``days`` of them where the layer has a time).

#: Narrowing the band stops where grids would lose more than a fifth of their
#: compactness (mean Polsby–Popper) against the plan at the tolerance.
NARROW_KEEPS = 0.8


@dataclass
class Atoms:
    """The atoms of a parent with their cells, workload and neighbours."""

    codes: np.ndarray
    weight: np.ndarray  # workload per atom (the weighted sum)
    households: np.ndarray
    cells: np.ndarray  # metric CRS
    crs: object
    graph: nx.Graph  # atom index → neighbours (edge attribute 'length' = shared edge, m)
    area: np.ndarray
    perimeter: np.ndarray
    start: np.ndarray  # current grid (index into ``groups``) of each atom
    groups: list[str]  # the current grids (codes)


@dataclass
class Result:
    """A partition of the atoms into k grids and its metrics."""

    labels: np.ndarray  # group of each atom, 0 … k-1
    k: int
    target: float
    loads: np.ndarray
    max_deviation: float
    contiguous: bool
    polsby_popper: np.ndarray
    households_moved: int
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def polsby_popper_mean(self) -> float:
        """The mean Polsby–Popper compactness of the grids (1 = a disc)."""
        return float(np.mean(self.polsby_popper)) if len(self.polsby_popper) else 0.0


def adjacency(cells: np.ndarray, *, min_length: float = 0.01) -> nx.Graph:
    """Cells sharing an edge (not just a corner) are neighbours; edges carry the length."""
    graph = nx.Graph()
    graph.add_nodes_from(range(len(cells)))
    tree = shapely.STRtree(cells)
    i, j = tree.query(cells, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    shared = shapely.length(
        shapely.intersection(shapely.boundary(cells[i]), shapely.boundary(cells[j]), grid_size=GRID)
    )
    ok = shared > min_length
    graph.add_weighted_edges_from(
        zip(i[ok].tolist(), j[ok].tolist(), shared[ok].tolist(), strict=True), weight="length"
    )
    return graph


def cut_by_lines(atoms: Atoms, lines: np.ndarray) -> int:
    """Remove neighbour links that cross hard edges (major streets, rivers); return how many."""
    if not len(lines):
        return 0
    seeds = shapely.point_on_surface(atoms.cells)
    edges = np.array(list(atoms.graph.edges()), dtype=np.int64).reshape(-1, 2)
    if not len(edges):
        return 0
    links = shapely.linestrings(
        np.stack(
            [
                np.c_[shapely.get_x(seeds[edges[:, 0]]), shapely.get_y(seeds[edges[:, 0]])],
                np.c_[shapely.get_x(seeds[edges[:, 1]]), shapely.get_y(seeds[edges[:, 1]])],
            ],
            axis=1,
        )
    )
    tree = shapely.STRtree(lines)
    hit = np.unique(tree.query(links, predicate="crosses")[0])
    atoms.graph.remove_edges_from(map(tuple, edges[hit].tolist()))
    return len(hit)


# -- the plan ------------------------------------------------------------------------


class _Plan:
    """Labels with loads, and the contiguity test single moves need."""

    def __init__(self, atoms: Atoms, labels: np.ndarray, k: int) -> None:
        self.a = atoms
        self.labels = labels.astype(np.int64).copy()
        self.k = k
        self.loads = np.bincount(self.labels, weights=atoms.weight, minlength=k).astype(float)
        self.members = [set(np.flatnonzero(self.labels == g).tolist()) for g in range(k)]

    def neighbours_of_group(self, g: int) -> dict[int, list[int]]:
        """Other group → atoms of ``g`` on the shared boundary."""
        out: dict[int, list[int]] = {}
        for v in self.members[g]:
            for u in self.a.graph.neighbors(v):
                h = self.labels[u]
                if h != g:
                    out.setdefault(int(h), []).append(v)
        return {h: sorted(set(vs)) for h, vs in out.items()}

    def move_within(self, v: int, h: int, lo: float, hi: float) -> bool:
        """Move atom ``v`` to group ``h`` if both loads stay in [lo, hi] and ``v``'s group whole."""
        w = self.a.weight[v]
        g = int(self.labels[v])
        if self.loads[g] - w < lo or self.loads[h] + w > hi or not self.can_leave(v):
            return False
        self.move(v, h)
        return True

    def can_leave(self, v: int) -> bool:
        """Whether atom ``v`` can leave its group without cutting the group in two."""
        g = self.labels[v]
        rest = self.members[g] - {v}
        if not rest:
            return False
        nbrs = [u for u in self.a.graph.neighbors(v) if u in rest]
        if len(nbrs) <= 1:
            return True
        # a search from one neighbour must reach the others without passing v
        seen = {nbrs[0]}
        todo = [nbrs[0]]
        want = set(nbrs[1:])
        while todo and want:
            x = todo.pop()
            for y in self.a.graph.neighbors(x):
                if y in rest and y not in seen:
                    seen.add(y)
                    want.discard(y)
                    todo.append(y)
        return not want

    def move(self, v: int, h: int) -> None:
        g = self.labels[v]
        self.members[g].discard(v)
        self.members[h].add(v)
        self.labels[v] = h
        w = self.a.weight[v]
        self.loads[g] -= w
        self.loads[h] += w

    def contiguous(self) -> bool:
        return all(len(m) > 0 and nx.is_connected(self.a.graph.subgraph(m)) for m in self.members)


def _components(graph: nx.Graph, nodes) -> list[set]:
    return sorted(nx.connected_components(graph.subgraph(nodes)), key=len, reverse=True)


def _repair(plan: _Plan) -> None:
    """Make every group one piece: stray pieces join the lightest neighbouring group."""
    for _round in range(20):
        moved = False
        for g in range(plan.k):
            if not plan.members[g]:
                continue
            parts = sorted(
                _components(plan.a.graph, plan.members[g]),
                key=lambda p: plan.a.weight[list(p)].sum() + len(p) * 1e-9,
                reverse=True,
            )
            for stray in parts[1:]:
                nbr = {
                    int(plan.labels[u])
                    for v in stray
                    for u in plan.a.graph.neighbors(v)
                    if plan.labels[u] != g
                }
                if not nbr:
                    continue
                h = min(nbr, key=lambda x: plan.loads[x])
                for v in stray:
                    plan.move(v, h)
                moved = True
        if not moved:
            return


def _halve(plan: _Plan, g: int, new: int) -> None:
    """Split group ``g`` in two of about equal workload, growing ``new`` from its far side."""
    members = sorted(plan.members[g])
    xy = shapely.get_coordinates(shapely.centroid(plan.a.cells[members]))
    centre = np.average(xy, axis=0, weights=plan.a.weight[members] + 1e-9)
    far = members[int(np.argmax(((xy - centre) ** 2).sum(axis=1)))]
    seed_xy = xy[members.index(far)]
    half = plan.loads[g] / 2
    dist = {v: float(((p - seed_xy) ** 2).sum()) for v, p in zip(members, xy, strict=True)}
    grown = {far}
    load = plan.a.weight[far]
    heap = [(dist[u], u) for u in plan.a.graph.neighbors(far) if u in plan.members[g]]
    heapq.heapify(heap)
    while heap and load < half:
        _d, u = heapq.heappop(heap)
        if u in grown:
            continue
        grown.add(u)
        load += plan.a.weight[u]
        for y in plan.a.graph.neighbors(u):
            if y in plan.members[g] and y not in grown:
                heapq.heappush(heap, (dist[y], y))
    if len(grown) == len(members):  # one atom too heavy: leave the last one
        grown.discard(members[-1] if members[-1] != far else members[0])
    plan.members.append(set())
    plan.loads = np.r_[plan.loads, 0.0]
    plan.k += 1
    for v in grown:
        plan.move(v, new)


def _merge_lightest(plan: _Plan) -> None:
    g = int(np.argmin(plan.loads))
    nbrs = plan.neighbours_of_group(g)
    h = min(nbrs, key=lambda x: plan.loads[x]) if nbrs else int(np.argsort(plan.loads)[1])
    for v in list(plan.members[g]):
        plan.move(v, h)
    # renumber: drop g
    keep = [x for x in range(plan.k) if x != g]
    remap = {old: new for new, old in enumerate(keep)}
    plan.labels = np.array([remap[x] for x in plan.labels])
    plan.members = [plan.members[x] for x in keep]
    plan.loads = plan.loads[keep]
    plan.k -= 1


def _flows(plan: _Plan, lo: float, hi: float, scale: float) -> dict[tuple[int, int], float]:
    """Workload to send across each shared boundary so every group ends in [lo, hi]."""
    graph = nx.DiGraph()
    loads = np.round(plan.loads * scale).astype(np.int64)
    lo_i, hi_i = int(math.ceil(lo * scale)), int(math.floor(hi * scale))
    demand_z = 0
    for g in range(plan.k):
        a, b = int(loads[g] - hi_i), int(loads[g] - lo_i)  # net outflow bounds
        if a > 0:
            graph.add_node(g, demand=-a)
            demand_z += a
            graph.add_edge("z", g, capacity=b - a, weight=0)
        elif b < 0:
            graph.add_node(g, demand=-b)
            demand_z += b
            graph.add_edge(g, "z", capacity=b - a, weight=0)
        else:
            graph.add_node(g, demand=0)
            if b > 0:
                graph.add_edge("z", g, capacity=b, weight=0)
            if a < 0:
                graph.add_edge(g, "z", capacity=-a, weight=0)
    graph.add_node("z", demand=demand_z)
    for g in range(plan.k):
        for h in plan.neighbours_of_group(g):
            graph.add_edge(g, h, weight=1)
    try:
        flow = nx.min_cost_flow(graph)
    except nx.NetworkXUnfeasible:
        return {}
    return {
        (g, h): f / scale
        for g, out in flow.items()
        if g != "z"
        for h, f in out.items()
        if h != "z" and f > 0
    }


def _pull(plan: _Plan, v: int, h: int) -> float:
    """How much more of atom ``v``'s edge borders group ``h`` than its own group (−1 … 1)."""
    g = plan.labels[v]
    to_h = to_g = 0.0
    for u in plan.a.graph.neighbors(v):
        length = plan.a.graph.edges[v, u]["length"]
        if plan.labels[u] == h:
            to_h += length
        elif plan.labels[u] == g:
            to_g += length
    return (to_h - to_g) / max(plan.a.perimeter[v], 1e-9)


def _send(plan: _Plan, g: int, h: int, amount: float) -> float:
    """Move boundary atoms of ``g`` to ``h`` worth about ``amount``; return what moved.

    While much is left, the atom most surrounded by ``h`` goes first (the
    boundary stays short); near the end, the atom that best fits what is left.
    """
    sent = 0.0
    for _step in range(10_000):
        left = amount - sent
        border = plan.neighbours_of_group(g).get(h, [])
        candidates = [v for v in border if plan.can_leave(v)]
        if not candidates or left <= 0:
            break
        w = plan.a.weight[candidates]
        fits = np.flatnonzero(w <= left)
        if len(fits):
            pull = np.array([_pull(plan, candidates[i], h) for i in fits])
            best = int(fits[np.argmax(pull + 1e-6 * w[fits] / max(left, 1e-9))])
        else:  # every candidate overshoots: the smallest, if it overshoots less than it helps
            best = int(np.argmin(w))
            if w[best] - left >= left:
                break
        plan.move(candidates[best], h)
        sent += w[best]
    return sent


def _polish(plan: _Plan, lo: float, hi: float, target: float, rounds: int = 20_000) -> None:
    """Single-atom moves that shrink the worst deviation (the flow leaves a few grains)."""
    for _ in range(rounds):
        dev = plan.loads - target
        order = np.argsort(-np.abs(dev))
        improved = False
        for g in order[:4]:
            g = int(g)
            if lo <= plan.loads[g] <= hi:
                break
            nbrs = plan.neighbours_of_group(g)
            best = None
            worst_now = max(abs(plan.loads[g] - target), 0)
            for h, border in nbrs.items():
                if plan.loads[g] > hi:  # give
                    for v in border:
                        w = plan.a.weight[v]
                        after = max(
                            abs(plan.loads[g] - w - target), abs(plan.loads[h] + w - target)
                        )
                        if after < worst_now - 1e-9 and plan.can_leave(v):
                            key = (after / target - 0.01 * _pull(plan, v, h), plan.a.households[v])
                            if best is None or key < best[0]:
                                best = (key, v, h)
                else:  # take
                    for v in _border_of(plan, h, g):
                        w = plan.a.weight[v]
                        after = max(
                            abs(plan.loads[g] + w - target), abs(plan.loads[h] - w - target)
                        )
                        if after < worst_now - 1e-9 and plan.can_leave(v):
                            key = (after / target - 0.01 * _pull(plan, v, g), plan.a.households[v])
                            if best is None or key < best[0]:
                                best = (key, v, g)
            if best is not None:
                plan.move(best[1], best[2])
                improved = True
                break
        if not improved:
            return


def _border_of(plan: _Plan, g: int, toward: int) -> list[int]:
    return plan.neighbours_of_group(g).get(toward, [])


def _compact(plan: _Plan, lo: float, hi: float, rounds: int = 3) -> None:
    """Moves that shorten shared boundaries (more compact grids) within the band.

    An atom touching another group along more than half its perimeter moves
    there when both groups stay in the band and its own group stays one piece.
    """
    a = plan.a
    for _ in range(rounds):
        changed = 0
        for v in range(len(a.codes)):
            g = int(plan.labels[v])
            touch: dict[int, float] = {}
            for u in a.graph.neighbors(v):
                h = int(plan.labels[u])
                touch[h] = touch.get(h, 0.0) + a.graph.edges[v, u]["length"]
            own = touch.get(g, 0.0)
            others = {h: length for h, length in touch.items() if h != g}
            if not others:
                continue
            h, length = max(others.items(), key=lambda t: t[1])
            if length <= own or length < 0.5 * a.perimeter[v]:
                continue
            changed += plan.move_within(v, h, lo, hi)
        if not changed:
            return


def partition(
    atoms: Atoms,
    k: int,
    *,
    tolerance: float = 0.05,
    seed: int = 0,
    start: np.ndarray | None = None,
    narrow: bool = True,
) -> Result:
    """Regroup atoms into ``k`` contiguous grids within ``tolerance`` of the mean workload.

    Parameters
    ----------
    atoms : Atoms
    k : int
        How many grids.
    tolerance : float
        Allowed deviation from the mean workload (0.05 = ±5%).
    seed : int
        Seeds the random spanning trees of the recombination step (used
        only when single moves cannot reach the tolerance).
    start : numpy.ndarray, optional
        Starting labels (default: the current grids).
    narrow : bool
        Once every grid is within the tolerance, keep narrowing the band
        (×0.6 at a time, each step moving the least it can) while whole atoms
        allow; False stops at the tolerance with the fewest households moved.
    """
    t0 = time.perf_counter()
    n = len(atoms.codes)
    if k < 1 or k > n:
        raise InputError(say("problem_k_range", n=n, k=k))
    labels = atoms.start if start is None else np.asarray(start)
    # a current grid without atoms cannot be kept: number the others 0 … k0-1
    labels = np.unique(labels, return_inverse=True)[1]
    plan = _Plan(atoms, labels, int(labels.max()) + 1)
    _repair(plan)
    while plan.k > k:
        _merge_lightest(plan)
    while plan.k < k:
        heavy = int(np.argmax(plan.loads))
        if len(plan.members[heavy]) < 2:
            break
        _halve(plan, heavy, plan.k)
    _repair(plan)

    total = float(atoms.weight.sum())
    target = total / k
    scale = 100.0 / max(float(np.min(atoms.weight[atoms.weight > 0], initial=1.0)), 1e-6)
    scale = min(scale, 1e7 / max(total, 1.0))
    _balance(plan, target, tolerance, scale)
    if not _within(plan, target, tolerance):  # single moves are stuck: recombine pairs
        _recombine(plan, target, tolerance, seed)
        _balance(plan, target, tolerance, scale)
    if _within(plan, target, tolerance):
        _return_home(plan, target * (1 - tolerance), target * (1 + tolerance))
    # within the tolerance, narrow the band while whole atoms allow: the busiest grid
    # carries less, for a few more households moved (each narrowing moves the least it can)
    band = tolerance
    compact_at_tolerance = float(np.mean(polsby_popper(atoms, plan.labels, plan.k)))
    while narrow and _within(plan, target, band) and band * 0.6 >= tolerance / 5:
        kept = plan.labels.copy()
        band *= 0.6
        _balance(plan, target, band, scale)
        compact = float(np.mean(polsby_popper(atoms, plan.labels, plan.k)))
        if not _within(plan, target, band) or compact < NARROW_KEEPS * compact_at_tolerance:
            plan = _Plan(atoms, kept, plan.k)
            break
    reached = max(float(np.max(np.abs(plan.loads - target)) / target), 0.0) if target else 0.0
    band = min(tolerance, reached) if reached <= tolerance else reached
    _return_home(plan, target * (1 - band), target * (1 + band))
    _compact(plan, target * (1 - band), target * (1 + band))
    return _result(atoms, plan, target, time.perf_counter() - t0, tolerance)


def _return_home(plan: _Plan, lo: float, hi: float, rounds: int = 20) -> None:
    """Move atoms back to the grid they came from wherever the band and contiguity allow.

    Balancing moves some atoms that, in the end, needed not move; each goes
    home (largest households first) when its home grid borders it, both grids
    stay within [lo, hi] and its present grid stays one piece.
    """
    a = plan.a
    for _ in range(rounds):
        home_of = match_groups(a, plan.labels)  # present group → its original grid
        original = {orig: g for g, orig in home_of.items()}
        away = [
            v
            for v in np.argsort(-a.households).tolist()
            if original.get(int(a.start[v])) is not None
            and original[int(a.start[v])] != plan.labels[v]
        ]
        changed = 0
        for v in away:
            h = original[int(a.start[v])]
            if any(plan.labels[u] == h for u in a.graph.neighbors(v)):
                changed += plan.move_within(v, h, lo, hi)
        if not changed:
            return


def _within(plan: _Plan, target: float, band: float) -> bool:
    return bool(plan.loads.min() >= target * (1 - band) and plan.loads.max() <= target * (1 + band))


def _balance(plan: _Plan, target: float, tolerance: float, scale: float) -> None:
    """Bring every grid within ``tolerance`` of the target, moving as little as it can."""
    lo, hi = target * (1 - tolerance), target * (1 + tolerance)
    inner_lo, inner_hi = target * (1 - tolerance / 2), target * (1 + tolerance / 2)
    for _round in range(6):
        if _within(plan, target, tolerance):
            break
        flows = _flows(plan, inner_lo, inner_hi, scale)
        if not flows:
            break
        graph = nx.DiGraph()
        graph.add_weighted_edges_from((g, h, f) for (g, h), f in flows.items())
        try:
            order = list(nx.topological_sort(graph))
        except nx.NetworkXUnfeasible:
            order = list(graph.nodes)
        for g in order:
            for h in list(graph.successors(g)):
                _send(plan, g, h, graph.edges[g, h]["weight"])
        _polish(plan, lo, hi, target)
    _polish(plan, lo, hi, target)


def _recombine(
    plan: _Plan,
    target: float,
    tolerance: float,
    seed: int,
    trees: int = 40,
    budget: float = 20.0,
) -> None:
    """Re-split pairs of neighbouring grids where single moves cannot help (ReCom's move).

    Each pair is merged and cut along an edge of random spanning trees of its
    atoms; the cut that leaves the two closest to the mean (least sum of
    squared deviations) is taken when it is better than the pair now and does
    not raise the worst deviation of all. Passes over all pairs repeat until
    none improves, every grid is within the tolerance, or ``budget`` seconds
    pass. Halves are oriented so the fewer households change grid.
    """
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < budget:
        improved = False
        pairs = sorted(
            {(min(g, h), max(g, h)) for g in range(plan.k) for h in plan.neighbours_of_group(g)},
            key=lambda p: -max(abs(plan.loads[p[0]] - target), abs(plan.loads[p[1]] - target)),
        )
        for g, h in pairs:
            if time.perf_counter() - t0 > budget or _within(plan, target, tolerance):
                return
            worst = float(np.max(np.abs(plan.loads - target)))
            now_ss = (plan.loads[g] - target) ** 2 + (plan.loads[h] - target) ** 2
            cut = _best_cut(plan, g, h, target, worst, rng, trees)
            if cut is None or cut[0] >= now_ss * (1 - 1e-9) - 1e-9:
                continue
            _, nodes, to_g = cut
            for v, mine in zip(nodes.tolist(), to_g.tolist(), strict=True):
                want = g if mine else h
                if plan.labels[v] != want:
                    plan.move(v, want)
            improved = True
        if not improved:
            return


def _best_cut(plan: _Plan, g: int, h: int, target: float, worst: float, rng, trees: int):
    """The best cut of grids g and h merged: (sum of squares, atoms, which go to g)."""
    a = plan.a
    nodes = np.array(sorted(plan.members[g] | plan.members[h]))
    local = {v: i for i, v in enumerate(nodes.tolist())}
    edges = np.array(
        [(local[u], local[v]) for u, v in a.graph.subgraph(nodes.tolist()).edges()]
    ).reshape(-1, 2)
    if not len(edges):
        return None
    w = a.weight[nodes]
    total = w.sum()
    was_g = plan.labels[nodes] == g
    best = None
    for _t in range(trees):
        r = rng.random(len(edges)) + 1e-9
        m = coo_matrix((r, (edges[:, 0], edges[:, 1])), shape=(len(nodes),) * 2)
        order, parent = breadth_first_order(minimum_spanning_tree(m + m.T), 0, directed=False)
        if len(order) < len(nodes):  # not connected (hard edges between them)
            return None
        below = w.copy()
        for v in order[::-1][:-1]:
            below[parent[v]] += below[v]
        high = np.maximum(np.abs(below - target), np.abs(total - below - target))
        ss = (below - target) ** 2 + (total - below - target) ** 2
        ss[(high > worst + 1e-9)] = np.inf
        ss[order[0]] = np.inf
        c = int(np.argmin(ss))
        if not np.isfinite(ss[c]) or (best is not None and ss[c] >= best[0]):
            continue
        children: dict[int, list[int]] = {}
        for v in order[1:]:
            children.setdefault(int(parent[v]), []).append(int(v))
        side = np.zeros(len(nodes), bool)
        stack = [c]
        while stack:
            v = stack.pop()
            side[v] = True
            stack.extend(children.get(v, []))
        hh = a.households[nodes]
        keep_a = hh[side & ~was_g].sum() + hh[~side & was_g].sum()  # side → g
        keep_b = hh[side & was_g].sum() + hh[~side & ~was_g].sum()  # side → h
        best = (float(ss[c]), nodes, side if keep_a <= keep_b else ~side)
    return best


def _result(atoms: Atoms, plan: _Plan, target: float, seconds: float, tolerance: float) -> Result:
    labels = plan.labels
    k = plan.k
    loads = np.bincount(labels, weights=atoms.weight, minlength=k)
    dev = float(np.max(np.abs(loads - target)) / target) if target > 0 else 0.0
    pp = polsby_popper(atoms, labels, k)
    moved = households_moved(atoms, labels)
    notes = []
    if dev > tolerance:
        heaviest = int(np.argmax(atoms.weight))
        if atoms.weight[heaviest] > target * (1 + tolerance):
            notes.append(
                f"{atoms.codes[heaviest]} alone weighs {atoms.weight[heaviest]:.0f}, more than "
                f"a grid may carry ({target:.0f} + {tolerance:.0%}): no grouping of whole atoms "
                "can meet the tolerance; split it, or ask for fewer grids"
            )
        else:
            notes.append(
                f"the best grouping found is {dev:.1%} off the mean (tolerance {tolerance:.0%}): "
                "atoms on the boundaries are too coarse or hard edges keep them apart"
            )
    contiguous = plan.contiguous()
    return Result(labels, k, target, loads, dev, contiguous, pp, moved, seconds, notes)


def polsby_popper(atoms: Atoms, labels: np.ndarray, k: int) -> np.ndarray:
    """4πA/P² of each group, from its cells (shared edges cancel out of the perimeter)."""
    area = np.bincount(labels, weights=atoms.area, minlength=k)
    perim = np.bincount(labels, weights=atoms.perimeter, minlength=k)
    edges = np.array(
        [(u, v, d["length"]) for u, v, d in atoms.graph.edges(data=True)], dtype=float
    ).reshape(-1, 3)
    if len(edges):
        u, v = edges[:, 0].astype(int), edges[:, 1].astype(int)
        inside = labels[u] == labels[v]
        perim -= 2 * np.bincount(labels[u[inside]], weights=edges[inside, 2], minlength=k)
    return 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2


def households_moved(atoms: Atoms, labels: np.ndarray) -> int:
    """Households in atoms whose grid is not the one they were in (groups matched best)."""
    keep = match_groups(atoms, labels)
    stay = np.array([keep.get(int(g)) for g in labels], dtype=object) == atoms.start
    return int(atoms.households[~stay].sum())


def match_groups(atoms: Atoms, labels: np.ndarray) -> dict[int, int]:
    """New group → the current grid it continues (most shared households, one-to-one)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    m = len(atoms.groups)
    overlap = np.zeros((k, m))
    np.add.at(
        overlap,
        (labels, atoms.start),
        atoms.households + 1e-3 * atoms.area / max(atoms.area.max(), 1),
    )
    rows, cols = linear_sum_assignment(-overlap)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if overlap[r, c] > 0}


def group_geometries(atoms: Atoms, labels: np.ndarray, k: int) -> list:
    """The outline of each group (lon/lat): the union of its cells."""
    out = []
    for g in range(k):
        merged = shapely.union_all(atoms.cells[labels == g], grid_size=GRID)
        out.append(reproject(np.array([merged], dtype=object), atoms.crs, WGS84)[0])
    return out
