"""``calibrate --suggest N``: which few whole models to time so that the fit pins every
constant of the latency model.

Why: on a phone only whole models can be timed, and a handful chosen by MACs alone
(all MobileNets, say) leave most constants unidentified: their depthwise outputs move in
step with their depthwise MACs, they have no grouped convs, no swish, no shuffles. The
fit weights each row by 1/t, so a model's row in the design is its features over its
(estimated) time; the greedy D-optimal design adds, one at a time, the candidate that
most increases log det(XᵀX) of the chosen rows (columns scaled to unit norm over the
candidates, a tiny ridge so that the first picks are comparable). Deterministic: ties
go to the earlier candidate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from macscalc.analysis.latency import Profile
    from macscalc.lang.graph import Network

RIDGE = 1e-6


class Suggestion(NamedTuple):
    picks: list[int]  # candidate indices, in the order chosen
    terms: list[str]  # the terms some candidate exercises and the reference prices
    rank: int  # the rank of the chosen rows over those terms


def suggest(networks: list[Network], n: int, reference: Profile) -> Suggestion:
    """The ``n`` candidates whose rows best pin the constants (``reference`` scales each
    row by its estimated time, as the fit weights it, and gives the runtime's layout)."""
    import numpy as np

    from macscalc.analysis.latency import TERMS, features

    x = np.array([[features(net, reference.block)[t.name] for t in TERMS] for net in networks],
                 dtype=float)
    coefs = np.array(reference.coefs())
    t = x @ coefs
    a = x / np.where(t > 0, t, 1.0)[:, None]
    # the constants some candidate exercises and the reference device prices: one it
    # finds free (cpu_epyc_1t's depthwise planes) is not worth a pick of its own
    used = a.any(axis=0) & (coefs > 0)
    a = a[:, used]
    a = a / np.linalg.norm(a, axis=0)
    chosen: list[int] = []
    eye = RIDGE * np.eye(a.shape[1])
    for _ in range(min(n, len(networks))):
        best, best_val = -1, -np.inf
        for i in range(len(networks)):
            if i in chosen:
                continue
            m = a[chosen + [i]]
            val = np.linalg.slogdet(m.T @ m + eye)[1]
            if val > best_val + 1e-9:
                best, best_val = i, val
        chosen.append(best)
    rank = int(np.linalg.matrix_rank(a[chosen])) if chosen else 0
    return Suggestion(chosen, [t.name for t, u in zip(TERMS, used, strict=True) if u], rank)
