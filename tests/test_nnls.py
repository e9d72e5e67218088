"""The non-negative least-squares solver meets the optimality conditions on any problem."""

from __future__ import annotations

import pytest

from macscalc.analysis.latency import nnls

np = pytest.importorskip("numpy", reason="the fit needs numpy")
hypothesis = pytest.importorskip("hypothesis", reason="property tests need hypothesis")
st = hypothesis.strategies


@hypothesis.settings(max_examples=40, deadline=None)
@hypothesis.given(st.integers(1, 4).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.floats(-10, 10), min_size=n, max_size=n), min_size=n, max_size=9),
    st.lists(st.floats(-10, 10), min_size=9, max_size=9))))
def test_nnls_meets_the_optimality_conditions(problem):
    rows, rhs = problem
    a, b = np.array(rows), np.array(rhs[:len(rows)])
    hypothesis.assume(np.linalg.cond(a) < 1e4)
    x = nnls(a, b)
    grad = a.T @ (a @ x - b)
    tol = 1e-7 * (1 + np.abs(a).max() ** 2 * (1 + np.abs(b).max()))
    assert (x >= 0).all()
    # KKT: no descent direction: zero gradient where x > 0, non-negative where x = 0
    assert (np.abs(grad[x > 0]) <= tol).all() and (grad[x == 0] >= -tol).all()
