"""Hot spots with known answers: planted clusters are found, uniform noise yields none."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from gis_grid.analysis.hotspots import gi_star, grid_units, kernel_density, pai, trend


def lattice(n: int = 20, size: float = 50.0):
    """An n x n lattice of square cells, ``size`` metres wide, in reading order."""
    xs, ys = np.meshgrid(np.arange(n) * size, np.arange(n) * size)
    cells = shapely.box(xs.ravel(), ys.ravel(), xs.ravel() + size, ys.ravel() + size)
    return grid_units([f"{i:03d}" for i in range(n * n)], cells, cells)


def test_planted_hotspots_are_found_and_nothing_else():
    units = lattice()
    rng = np.random.default_rng(3)
    counts = rng.poisson(5, 400).astype(float)
    block = [(r, c) for r in range(8, 11) for c in range(5, 8)]  # a 3 x 3 block at row 8-10
    planted = np.array([r * 20 + c for r, c in block])
    counts[planted] = rng.poisson(30, len(planted))
    result = gi_star(counts, units.adjacency, permutations=0)
    hot = set(np.flatnonzero(result["spot"] == "hot"))
    assert set(planted) <= hot
    # anything else flagged touches the block (its neighbourhood holds the block)
    rows, cols = np.divmod(np.array(sorted(hot - set(planted))), 20)
    assert ((rows >= 7) & (rows <= 11) & (cols >= 4) & (cols <= 8)).all()
    assert not (result["spot"] == "cold").any()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_a_uniform_random_pattern_yields_no_spot_at_95_percent_with_fdr(seed):
    units = lattice()
    counts = np.random.default_rng(seed).poisson(8, 400).astype(float)
    result = gi_star(counts, units.adjacency, permutations=0, alpha=0.05)
    assert (result["spot"] == "").all()


def test_same_z_and_p_as_esda_for_the_same_seed():
    import esda
    from libpysal.graph import Graph

    units = lattice(12)
    counts = np.random.default_rng(9).poisson(4, 144).astype(float)
    ours = gi_star(counts, units.adjacency, permutations=99, seed=5)
    graph = Graph.from_sparse(units.adjacency, ids=np.arange(144))
    theirs = esda.G_Local(counts, graph, transform="B", star=True, permutations=99, seed=5)
    np.testing.assert_allclose(ours["z"], theirs.Zs)
    np.testing.assert_allclose(ours["p_sim"], theirs.p_sim)


def test_kernel_density_keeps_the_count_and_peaks_at_the_cluster():
    rng = np.random.default_rng(1)
    x = np.r_[rng.uniform(0, 1000, 500), rng.normal(700, 10, 500)]
    y = np.r_[rng.uniform(0, 1000, 500), rng.normal(300, 10, 500)]
    surface = kernel_density(x, y, cell_m=20, bandwidth_m=30, bounds=(-200, -200, 1200, 1200))
    assert surface.total() == pytest.approx(1000, rel=0.01)
    row, col = np.unravel_index(np.argmax(surface.density), surface.density.shape)
    px = surface.origin[0] + (col + 0.5) * 20
    py = surface.origin[1] - (row + 0.5) * 20
    assert abs(px - 700) < 30 and abs(py - 300) < 30


def test_pai_and_trend():
    assert pai([True, True, False, False], [40, 40, 10, 10], [1, 1, 6, 6]) == pytest.approx(
        0.8 / (2 / 14)
    )
    assert pai([False, False], [1, 1], [1, 1]) == 0.0
    assert trend(["hot", "hot", "", ""], ["hot", "", "hot", ""]).tolist() == [
        "persistent",
        "new",
        "fading",
        "",
    ]
