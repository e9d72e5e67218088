"""Sweeps over width multiplier α × input resolution, vectorized with numpy.

Counts depend on α only through each layer's rounded channels, and on the resolution only
through each layer's spatial size. So a network is built once per distinct channel
configuration (α values that round alike share one build), the spatial size of every
feature map is followed for all resolutions at once over int64 arrays, and

    MACs(α, R) = Σ_i K_i(α)·H_i(R)·W_i(R)       peak(α, R) = max_j Σ_t c_t(α)·H_t(R)·W_t(R)

are array products (K_i: the layer's MACs per output position; the peak runs over the
layers of ``memory.peak`` with the tensors live while each runs). Every value equals what
``count`` gives at that point; integers are exact, and bounds are checked before any
product could overflow int64.

A build is reused only at resolutions where every distinct feature-map size compares the
same way with every other (and with 1×1), none is zero, and every flatten sees the same
size (its channels depend on it): the builder's shape checks and decisions then go the
same way. Each other class of resolutions gets its own build. A point whose build fails
is an error with the builder's message, never a number. numpy is imported only here.

What makes a million points cheap: every width is rounded at every α at once
(``rounding.RoundingRule.widths``); the builds of one sweep share a ``graph.Replay``, so
a configuration re-expands only the rows its widths reach, and what a plan needs of
each node is computed once per node; the first resolution that builds classes all the
others; products below 2⁵³ run in float64 (exact there); and the frontier sorts only
the points a coarse pass cannot rule out.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from macscalc.analysis.counting import Convention, param_convention
from macscalc.analysis.kernels import BLOCK, padded_rows, too_big
from macscalc.analysis.kernels import DTYPE_BYTES as RUNTIME_BYTES
from macscalc.analysis.memory import IN_PLACE, tensors
from macscalc.core.errors import MacscalcError, show
from macscalc.core.limits import MAX_ALPHA, MAX_SIZE, MAX_SWEEP_ALPHAS, MAX_SWEEP_POINTS
from macscalc.core.units import DTYPE_BYTES, dtype_name, exact, fmt_alpha, positive_ratio
from macscalc.lang.graph import Network, Node, Replay, build
from macscalc.lang.layers import PARAM_PARTS, Layer, Shape
from macscalc.lang.spec import Spec, UserBlock, load_spec

if TYPE_CHECKING:
    from macscalc.analysis.latency import Profile

INT64_LIMIT = 2**63
FLOAT_EXACT = 2**53  # integers below this are exact in float64, and so are their sums
PAIRWISE = 1024  # live rows compared all with all (a bool array of PAIRWISE² × chains)
PRODUCT_CELLS = 1 << 22  # live rows × resolutions multiplied at once
BLOCK_CELLS = 1 << 16  # grid points the frontier's prefilter takes at once

# How each primitive maps its first input's (h, w): a hashable rule, or None (unchanged).
# A kind missing here cannot be swept (tests check that every primitive is listed).
Rule = tuple[Any, ...]


def _window(layer: Any) -> Rule:
    return ("window", layer.k, layer.s, layer.d, layer.padding, False)


def _upsample(layer: Any) -> Rule:
    if layer.like is not None:
        return LIKE  # the size of its second input, whatever the resolution
    return ("size", layer.size) if layer.size is not None else ("scale", layer.scale)


LIKE: Rule = ("like",)  # the output lies on its second input's chain (``upsample: {like}``)


def _tokens(layer: Any) -> Rule:
    """Token layouts and attention: MACs of q·kᵀ grow with the square of the tokens, not
    with H·W, so the sweep's MACs = K·H·W does not hold; refused, never approximated."""
    raise MacscalcError(f"sweep cannot follow a {layer.kind!r} layer: token and attention "
                        "costs do not scale with H·W (q·kᵀ grows with the square of the "
                        "tokens); use count per point")


SPATIAL: dict[str, Callable[[Any], Rule | None]] = {
    "conv2d": _window,
    "depthwise": _window,
    "pool": lambda p: ("window", p.k, p.s, (1, 1), p.padding, p.ceil),
    "global_pool": lambda _: ("size", (1, 1)),
    "flatten": lambda _: ("size", (1, 1)),
    "adaptive_pool": lambda p: ("size", p.size),
    "upsample": _upsample,
    "conv_transpose": lambda t: ("transpose", t.k, t.s, t.d, t.padding, t.output_padding),
    "space_to_depth": lambda b: ("window", (b.block,) * 2, (b.block,) * 2, (1, 1), "valid",
                                 False),
    **dict.fromkeys(("linear", "batchnorm", "act", "add", "mul", "dropout", "drop_path",
                     "shuffle", "shiftmax", "concat", "slice", "layernorm", "layer_scale",
                     "l2norm", "scalar", "groupnorm", "grn", "eltwise"),
                    lambda _: None),
    **dict.fromkeys(("to_tokens", "to_image", "window_partition", "window_merge", "heads",
                     "merge_heads", "take_tokens", "reshape", "class_token", "pos_embed",
                     "bias_table", "matmul", "pad_channels"), _tokens),
}
CHANNELS_FROM_SIZE = frozenset({"flatten"})  # output channels h·w·c: the build depends on it


def _rule(layer: Layer) -> Rule | None:
    if layer.kind not in SPATIAL:
        raise MacscalcError(f"sweep cannot follow the spatial size through a {layer.kind!r} "
                            "layer yet (macscalc/analysis/sweeps.py SPATIAL); use count per point")
    return SPATIAL[layer.kind](layer)


def _axis(n: np.ndarray, k: int, s: int, d: int, pad: str | int, ceil: bool) -> np.ndarray:
    """``layers._spatial`` over an array of input lengths (0 where the window collapses)."""
    if pad == "same":
        return -(-n // s)
    span = d * (k - 1) + 1
    p = 0 if pad == "valid" else pad
    total = n + 2 * p
    if ceil:
        out = -(-(total - span) // s) + 1
        out = np.where((out - 1) * s >= n + p, out - 1, out)
    else:
        out = (total - span) // s + 1
    return np.where(total < span, 0, out)


def _apply(rule: Rule, h: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if rule[0] == "window":
        _, k, s, d, padding, ceil = rule
        pads = (padding, padding) if isinstance(padding, str) else padding
        return (_axis(h, k[0], s[0], d[0], pads[0], ceil),
                _axis(w, k[1], s[1], d[1], pads[1], ceil))
    if rule[0] == "size":
        return np.full_like(h, rule[1][0]), np.full_like(w, rule[1][1])
    if rule[0] == "transpose":  # ConvTranspose2d._side; 0 where it collapses
        _, k, s, d, p, extra = rule
        return tuple(np.maximum((n - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + extra[i] + 1, 0)
                     for i, n in enumerate((h, w)))
    scale = rule[1]
    if max(int(h.max()), int(w.max())) * scale >= INT64_LIMIT // MAX_SIZE:
        raise MacscalcError(f"upsampling ×{scale} makes feature maps too large to count")
    return h * scale, w * scale


class _Sizes:
    """Every distinct chain of spatial sizes over the sweep's resolutions. Chain 0 is the
    input; layers that compute the same sizes share a chain."""

    def __init__(self, res: np.ndarray) -> None:
        self.h = [res]
        self.w = [res]
        self._memo: dict[tuple[Rule, int], int] = {}
        self._by_value: dict[tuple[bytes, bytes], int] = {(res.tobytes(), res.tobytes()): 0}

    def chain(self, rule: Rule, src: int) -> int:
        key = (rule, src)
        if key not in self._memo:
            h, w = _apply(rule, self.h[src], self.w[src])
            value = (h.tobytes(), w.tobytes())
            if value not in self._by_value:
                self._by_value[value] = len(self.h)
                self.h.append(h)
                self.w.append(w)
            self._memo[key] = self._by_value[value]
        return self._memo[key]

    def area(self, chains: tuple[int, ...], idx: np.ndarray) -> np.ndarray:
        """H·W of each chain at the resolutions ``idx`` (chains × points)."""
        return np.stack([self.h[c][idx] * self.w[c][idx] for c in chains])


# a blocked k×k conv's layer, its input's and output's chains, and the ms of one skipped
# row of MACs (kernels.padded_rows, taken point by point)
Clips = tuple[tuple[Any, int, int, float], ...]


class _Plan(NamedTuple):
    """One built network reduced to what varies with resolution."""

    chains: tuple[int, ...]  # the chains its tensors lie on
    macs: np.ndarray  # per chain: MACs per output position, summed over its layers
    params: int
    live: np.ndarray  # rows × chains: channels live while a layer runs (dominated rows dropped)
    flatten: tuple[int, ...]  # chains whose size a flatten turns into channels
    branches: tuple[tuple[int, int], ...]  # (branch point, joined input) chains that differ
    latency: np.ndarray | None = None  # ms per position of each chain, then fixed ms
    # with latency, each tensor whose bytes come from memory as well where it is too big
    # for the caches (kernels.uncached): its chain, channels and how often its bytes count
    spills: np.ndarray | None = None  # rows of (chain index, channels, times)
    clips: Clips = ()  # with latency, each blocked k×k conv


class _Skeleton(NamedTuple):
    """What a network's names, inputs, kinds and spatial rules fix, whatever its channels:
    the chain of every output, and when each tensor lives (``memory.tensors``)."""

    chains: tuple[int, ...]
    column: list[int]  # per node: the column of its output's chain in ``chains``
    flatten: tuple[int, ...]
    branches: tuple[tuple[int, int], ...]
    writers: list[int]  # per tensor: the node writing it (-1: the input)
    start_cells: np.ndarray  # per tensor: (first node, column) and (last node + 1, column)
    end_cells: np.ndarray  # as flat indices into a (nodes + 2) × chains table
    running: list[int]  # nodes that allocate (the peak is taken while one of them runs)
    with_macs: list[tuple[int, int]]  # nodes with MACs, and the column whose area they scale


def _skeleton(net: Network, rules: list[Rule | None], sizes: _Sizes) -> _Skeleton:
    chain = {"input": 0}
    for n, rule in zip(net.nodes, rules, strict=True):
        src = chain[n.inputs[0]]
        if rule == LIKE:
            chain[n.name] = chain[n.inputs[1]]
        else:
            chain[n.name] = src if rule is None else sizes.chain(rule, src)
    chains = tuple(sorted(set(chain.values())))
    col = {c: i for i, c in enumerate(chains)}
    index = {n.name: i for i, n in enumerate(net.nodes)}
    ts = tensors(net)
    cells = [(max(t.first, 0), t.last + 1, col[chain[t.name]]) for t in ts]
    with_macs = [(i, col[chain[n.name] if _macs_follow(n) == "out" else chain[n.inputs[0]]])
                 for i, n in enumerate(net.nodes) if n.layer.macs(n.in_shapes, n.out)]
    return _Skeleton(
        chains, [col[chain[n.name]] for n in net.nodes],
        tuple(chain[n.inputs[0]] for n in net.nodes if n.layer.kind in CHANNELS_FROM_SIZE),
        _branches(net, chain),
        [index.get(t.name, -1) for t in ts],
        np.array([a * len(chains) + c for a, _, c in cells], dtype=np.intp),
        np.array([b * len(chains) + c for _, b, c in cells], dtype=np.intp),
        [i for i, n in enumerate(net.nodes) if n.layer.kind not in IN_PLACE], with_macs)


def _branches(net: Network, chain: dict[str, int]) -> tuple[tuple[int, int], ...]:
    """For each add, the chain where its inputs branch off (nearest shared ancestor along
    first inputs) against each input's, where they differ: what a residual compares to
    choose identity, a projection (a 1×1 conv whose stride must give the size) or an
    error."""
    first_input = {n.name: n.inputs[0] for n in net.nodes}

    def path(name: str) -> list[str]:
        out = [name]
        while out[-1] in first_input:
            out.append(first_input[out[-1]])
        return out

    pairs = set()
    for n in net.nodes:
        if n.layer.kind == "add":
            ups = [path(x) for x in n.inputs]
            shared = set.intersection(*map(set, ups))
            meet = next(x for x in ups[0] if x in shared)
            pairs |= {(chain[meet], chain[x]) for x in n.inputs if chain[x] != chain[meet]}
    return tuple(sorted(pairs))


def _per_position(n: Any) -> int:
    """A layer's MACs at 1×1 input and output: its MACs per position."""
    return n.layer.macs([Shape(1, 1, s.c) for s in n.in_shapes], Shape(1, 1, n.out.c))


def _macs_follow(n: Any) -> str:
    """Whether a layer's MACs are K·hout·wout (convolutions, FC) or K·hin·win (transposed
    convolutions), probed at sizes that tell them apart; anything else cannot be swept."""
    k = _per_position(n)
    probe = n.layer.macs([Shape(2, 3, s.c) for s in n.in_shapes], Shape(5, 7, n.out.c))
    if probe == k * 35:
        return "out"
    if probe == k * 6:
        return "in"
    raise MacscalcError(f"sweep cannot follow how {n.layer.kind!r} MACs grow with the input "
                        "size; use count per point")


def _check(net: Network, sk: _Skeleton, sizes: _Sizes, at: int) -> None:
    """The spatial rules against every layer's own output size at ``at``, and each layer's
    MACs against K times the area they follow."""
    for n, col in zip(net.nodes, sk.column, strict=True):
        c = sk.chains[col]
        if (sizes.h[c][at], sizes.w[c][at]) != (n.out.h, n.out.w):
            raise RuntimeError(f"sweep's spatial rule for {n.layer.kind!r} gives "
                               f"{sizes.h[c][at]}×{sizes.w[c][at]} at {n.name}, the layer "
                               f"{n.out}")
    for i, col in sk.with_macs:
        n, c = net.nodes[i], sk.chains[col]
        if _per_position(n) * int(sizes.h[c][at]) * int(sizes.w[c][at]) != n.layer.macs(
                n.in_shapes, n.out):
            raise RuntimeError(f"{n.layer.kind!r} MACs at {n.name} are not K·h·w")


def _undominated(rows: np.ndarray) -> np.ndarray:
    """The rows no other row beats, the only ones that can hold the peak: j beats i when
    it is ≥ everywhere and differs, or equals it and comes first. Beating is transitive,
    so rows beaten by a neighbour go first; the rest are compared all with all when
    there are at most ``PAIRWISE`` of them (else a few beaten rows stay: harmless)."""
    if len(rows) > 2:
        ge = (rows[1:] >= rows[:-1]).all(axis=1)  # the next row ≥ this one
        le = (rows[1:] <= rows[:-1]).all(axis=1)
        beaten = np.zeros(len(rows), dtype=bool)
        beaten[:-1] |= ge & ~le
        beaten[1:] |= le
        rows = rows[~beaten]
    if len(rows) > PAIRWISE:
        return rows
    covers = (rows[:, None, :] >= rows[None, :, :]).all(axis=2)  # [j, i]: row j ≥ row i
    earlier = ~np.tri(len(rows), dtype=bool)  # [j, i]: j < i
    return rows[~(covers & (~covers.T | earlier)).any(axis=0)]


class SweepError(NamedTuple):
    """Points with no network: indices into ``alphas`` and ``resolutions``, and why."""

    alphas: tuple[int, ...]
    resolutions: tuple[int, ...]
    message: str


class Sweep(NamedTuple):
    """Counts over α × resolution: arrays of shape (len(alphas), len(resolutions)), int64;
    -1 where ``valid`` is false (see ``errors``). Memory is the plain liveness peak in bytes
    of ``convention.dtype``."""

    spec: Spec
    alphas: tuple[Fraction, ...]
    resolutions: np.ndarray
    macs: np.ndarray
    params: np.ndarray
    memory: np.ndarray
    valid: np.ndarray
    errors: tuple[SweepError, ...]
    classes: int
    convention: Convention
    builds: int  # networks built
    latency: np.ndarray | None = None  # ms estimated on a device profile (float, nan: invalid)
    profile: Profile | None = None


def _probes(res: np.ndarray) -> np.ndarray:
    """Resolution indices in the order a search for one that builds tries them: the top,
    the bottom, then by the power of two that divides R, most first (a network's strides
    are powers of two, and its residuals need sizes they divide), larger R first."""
    rest = np.lexsort((-res[1:-1], -(res[1:-1] & -res[1:-1]))) + 1
    ends = [len(res) - 1, 0] if len(res) > 1 else [0]
    return np.concatenate((np.array(ends, dtype=rest.dtype), rest))


class _Facts(NamedTuple):
    """What a plan needs of one placed node, whatever the resolution it was built at."""

    node: Node  # held, so that no other node can take the id it is filed under
    token: int  # its name, inputs, kind and spatial rule, numbered: skeletons' keys
    k: int  # MACs per position
    params: int  # in the sweep's convention


class _Grid:
    """Fills one α group's row of every array, class of resolutions by class; what its
    builds and plans share lives here for the whole sweep."""

    FACTS_LIMIT = 100_000  # nodes remembered; past it the table starts over

    def __init__(self, spec: Spec, res: np.ndarray, classes: int, convention: Convention,
                 profile: Profile | None = None):
        self.spec = spec
        self.coefs = profile.coefs() if profile is not None else None
        self.block = profile.block if profile is not None else BLOCK
        # ms per byte from memory: the one cost a sweep adds point by point (_spilled)
        self.memory_ms = 0.0
        if self.coefs is not None:
            from macscalc.analysis.latency import TERM_NAMES

            self.memory_ms = self.coefs[TERM_NAMES.index("dram")]
        self.res = res
        self.classes = classes
        self.picked = [PARAM_PARTS.index(p) for p in convention.params.parts]
        self.nbytes = DTYPE_BYTES[convention.dtype]
        self.sizes = _Sizes(res)
        self.probes = _probes(res)
        self.builds = 0
        self.replay = Replay()
        self._facts: dict[int, _Facts] = {}  # by the id of the node
        self._tokens: dict[tuple[Any, ...], int] = {}
        self._labels: dict[tuple[Any, ...], np.ndarray] = {}
        self._skeletons: dict[tuple[Any, ...], _Skeleton] = {}
        self._checked: set[tuple[Any, ...]] = set()
        self._areas: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray, list[int]]] = {}

    def _build(self, spec: Spec, alpha: Fraction, at: int) -> Network | str:
        self.builds += 1
        r = int(self.res[at])
        try:
            return build(spec, alpha, (r, r), self.classes, self.replay)
        except MacscalcError as e:
            return e.located()

    def row(self, spec: Spec, alpha: Fraction, out: list[np.ndarray],
            latency: np.ndarray | None) -> list[tuple[np.ndarray, str]]:
        """Fill MACs, params, memory (and latency) at every resolution where ``alpha``
        builds; return the errors where it does not.

        Resolutions are tried in ``_probes`` order until one builds (each that fails is
        an error of its own; if the top and bottom fail alike, so do all). That network
        classes every resolution not yet tried (``_classes``): its own class is filled,
        and each other class is built once at its top, failing as a whole or classing its
        members again by its own network."""
        errors: list[tuple[np.ndarray, str]] = []

        def failed(idx: np.ndarray, message: str) -> None:
            r = self.res[idx[-1]]
            errors.append((idx, f"{r}×{r}: {message}"))

        n = len(self.res)
        untried = np.ones(n, dtype=bool)
        tried: list[tuple[int, str]] = []  # resolutions that failed, and why
        todo: list[np.ndarray] = []  # classes of resolution indices, ascending
        for at in self.probes.tolist():
            net = self._build(spec, alpha, at)
            if not isinstance(net, str):
                todo += self._fill_class(net, at, np.flatnonzero(untried), out, latency)
                break
            untried[at] = False
            tried.append((at, net))
            if len(tried) == 2 and tried[0][1] == net:  # the ends fail alike: so do all
                failed(np.arange(n), net)
                tried = []
                break
        for at, message in sorted(tried):
            failed(np.array([at]), message)
        while todo:
            idx = todo.pop()
            net = self._build(spec, alpha, idx[-1])
            if isinstance(net, str):
                failed(idx, net)
            else:
                todo += self._fill_class(net, idx[-1], idx, out, latency)
        return errors

    def _fill_class(self, net: Network, at: int, idx: np.ndarray, out: list[np.ndarray],
                    latency: np.ndarray | None) -> list[np.ndarray]:
        """Fill the resolutions of ``idx`` that ``net`` (built at ``at``) holds for: those
        of its class; return the other classes."""
        plan = self._plan(net, at)
        labels = self._classes(plan, idx)
        mine = labels == labels[np.searchsorted(idx, at)]
        self._fill(plan, idx[mine], out, latency)
        return [idx[labels == v] for v in np.unique(labels[~mine])]

    def _node(self, n: Node) -> _Facts:
        """``_Facts`` of a node not seen before (replayed rows share their nodes)."""
        if len(self._facts) >= self.FACTS_LIMIT:
            self._facts.clear()
        k = _per_position(n)
        token = self._tokens.setdefault((n.name, n.inputs, n.layer.kind, _rule(n.layer)),
                                        len(self._tokens))
        params = sum(map(n.layer.params(n.in_shapes).__getitem__, self.picked))
        facts = self._facts[id(n)] = _Facts(n, token, k, params)
        return facts

    def _plan(self, net: Network, at: int) -> _Plan:
        """Reduce ``net`` (built at resolution index ``at``) to per-chain coefficients."""
        nodes = net.nodes
        known = self._facts  # an entry holds its node, so an id found is that node's
        facts = [known.get(id(n)) or self._node(n) for n in nodes]
        key = tuple(f.token for f in facts)
        sk = self._skeletons.get(key)
        if sk is None:
            rules = [_rule(n.layer) for n in nodes]
            sk = self._skeletons[key] = _skeleton(net, rules, self.sizes)
        if (key, at) not in self._checked:
            _check(net, sk, self.sizes, at)
            self._checked.add((key, at))
        macs = [0] * len(sk.chains)
        for i, col in sk.with_macs:
            macs[col] += facts[i].k
        params = sum(f.params for f in facts)
        width = np.array([nodes[w].out.c if w >= 0 else net.input.c for w in sk.writers],
                         dtype=np.int64)
        change = np.zeros((len(nodes) + 2) * len(sk.chains), dtype=np.int64)
        np.add.at(change, sk.start_cells, width)
        np.add.at(change, sk.end_cells, -width)
        live = np.cumsum(change.reshape(len(nodes) + 2, len(sk.chains)), axis=0)[sk.running]
        return _Plan(sk.chains, np.array(macs, dtype=object), params, _undominated(live),
                     sk.flatten, sk.branches, *self._latency_terms(net, sk))

    def _latency_terms(self, net: Network, sk: _Skeleton
                       ) -> tuple[np.ndarray | None, np.ndarray | None,
                                  Clips]:
        """For a device profile: the estimate as ms per position of each chain (each
        tensor's features scale with its chain's area), then the ms that do not scale;
        the tensors whose bytes come from memory too where they are too big for the
        caches, and the MACs k×k convs skip at the padding (``_fill`` takes both point
        by point: neither is linear in the areas)."""
        if self.coefs is None:
            return None, None, ()
        from macscalc.analysis.latency import TERM_NAMES, network_ms

        units = np.eye(len(sk.chains) + 1)
        column = {"input": sk.chains.index(0),
                  **{n.name: c for n, c in zip(net.nodes, sk.column, strict=True)}}
        spills: list[tuple[int, int, int]] = []
        clips: list[tuple[Any, int, int, float]] = []

        def note(name: str, shape: Shape, times: int) -> bool:
            spills.append((column[name], shape.c, times))
            return False

        def clip(n: Node, cls: str, per_row: int) -> int:
            cost = self.coefs[TERM_NAMES.index(f"macs_{cls}")] * per_row
            clips.append((n.layer, sk.chains[column[n.inputs[0]]], sk.chains[column[n.name]],
                          cost))
            return 0

        ms = network_ms(self.coefs, net, lambda name: units[column[name]], units[-1], note,
                        clip, self.block)
        return ms, np.array(spills, dtype=np.int64).reshape(-1, 3), tuple(clips)

    def _classes(self, plan: _Plan, idx: np.ndarray) -> np.ndarray:
        """Label each resolution by how its feature-map sizes compare (pairwise, with 1×1,
        with zero; where branches join, whether a strided 1×1 conv reaches one from the
        other) and by the
        sizes flattened: one build holds within a label."""
        key = (plan.chains, plan.flatten, plan.branches, idx.tobytes())
        if key not in self._labels:
            chains = (*plan.chains, self.sizes.chain(("size", (1, 1)), 0))
            h = np.stack([self.sizes.h[c][idx] for c in chains])
            w = np.stack([self.sizes.w[c][idx] for c in chains])
            same = (h[:, None] == h[None]) & (w[:, None] == w[None])
            upper = np.triu_indices(len(chains), 1)
            flags = [same[upper], (h > 0) & (w > 0)]
            for a, b in plan.branches:
                (ha, wa), (hb, wb) = ((self.sizes.h[c][idx], self.sizes.w[c][idx])
                                      for c in (a, b))
                hb, wb = np.maximum(hb, 1), np.maximum(wb, 1)
                sh, sw = -(-ha // hb), -(-wa // wb)  # blocks.projection_stride, per axis
                flags.append((-(-ha // np.maximum(sh, 1)) == hb)
                             & (-(-wa // np.maximum(sw, 1)) == wb))
            bits = np.packbits(np.vstack(flags), axis=0)
            flat = [a[c][idx] for c in plan.flatten for a in (self.sizes.h, self.sizes.w)]
            sig = np.ascontiguousarray(np.vstack([bits, *(f.view(np.uint8).reshape(
                len(idx), 8).T for f in flat)]).T)
            text, width, seen = sig.tobytes(), sig.shape[1], {}
            self._labels[key] = np.array([seen.setdefault(text[i:i + width], len(seen))
                                          for i in range(0, len(text), width)])
        return self._labels[key]

    def _fill(self, plan: _Plan, idx: np.ndarray, out: list[np.ndarray],
              latency: np.ndarray | None) -> None:
        key = (plan.chains, idx.tobytes())
        if key not in self._areas:
            self._areas.clear()  # one class of resolutions at a time, mostly all of them
            area = self.sizes.area(plan.chains, idx)
            self._areas[key] = (area, area.astype(float), area.max(axis=1).tolist())
        area, area_float, area_max = self._areas[key]
        bound = max(sum(int(k) * a for k, a in zip(plan.macs, area_max, strict=True)),
                    plan.params,
                    max((sum(int(c) * a for c, a in zip(row, area_max, strict=True))
                         * self.nbytes for row in plan.live.tolist()), default=0), *area_max)
        if bound >= INT64_LIMIT:
            raise MacscalcError(f"counts up to {bound:,} do not fit 64-bit integers; sweep "
                                "smaller resolutions")
        # below 2⁵³ every product and partial sum is an integer that a float64 holds
        # exactly, and BLAS multiplies floats several times faster than numpy does int64
        area = area_float if bound < FLOAT_EXACT else area
        out[0][idx] = np.array(plan.macs, dtype=area.dtype) @ area
        out[1][idx] = plan.params
        live = plan.live.astype(area.dtype)
        step = max(1, PRODUCT_CELLS // len(idx))
        peak = np.zeros(len(idx), dtype=area.dtype)
        for start in range(0, len(live), step):
            np.maximum(peak, (live[start:start + step] @ area).max(axis=0), out=peak)
        out[2][idx] = peak * self.nbytes
        if plan.latency is not None and latency is not None:
            latency[idx] = plan.latency[:-1] @ area.astype(float) + plan.latency[-1] + \
                self._spilled(plan.spills, area) - self._clipped(plan.clips, idx)

    def _clipped(self, clips: Clips, idx: np.ndarray) -> np.ndarray | float:
        """ms of the MACs each blocked k×k conv skips at each point: its kernel rows that
        read padding (``kernels.padded_rows``), a row of output positions each."""
        h, w = self.sizes.h, self.sizes.w
        return sum((cost * w[out][idx] * padded_rows(layer, h[src][idx], h[out][idx])
                    for layer, src, out, cost in clips), 0.0)

    def _spilled(self, spills: np.ndarray, area: np.ndarray) -> np.ndarray | float:
        """ms of the bytes that come from memory at each point: every noted tensor too
        big for the caches there (``kernels.uncached``), at the profile's memory rate."""
        if not len(spills):
            return 0.0
        nbytes = RUNTIME_BYTES * spills[:, 1, None] * area[spills[:, 0]].astype(float)
        return self.memory_ms * (
            spills[:, 2, None] * nbytes * too_big(nbytes)).sum(axis=0)


Site = tuple[Any, int, Fraction | None]  # rounding rule, declared width, floor multiplier


def _width_sites(spec: Spec) -> list[Site]:
    """Where the builder applies α (``Builder.changes``): every width field of every row,
    inside the spec's own blocks too, with the row's floor (``width: {min: m}``, or the
    enclosing block row's); the base spec's rows under its own rule."""
    sites: list[Site] = []

    def walk(rule: Any, rows: Iterable[Any], outer: Any) -> None:
        for row in rows:
            width = row.width if row.width is not None else outer
            if isinstance(row.item, UserBlock):
                walk(rule, [r for rows in row.item.repeats for r in rows], width)
            elif width != "fixed":
                sites.extend((rule, getattr(row.item, name), width) for name in row.item.width_args
                             if getattr(row.item, name) not in (None, "classes"))

    if spec.base is not None:
        walk(spec.base.spec.rounding, spec.base.spec.rows, None)
    walk(spec.rounding, spec.rows, None)
    return sites


def _recording(spec: Spec, calls: set[tuple[Any, ...]]) -> Spec:
    """``spec`` (and its base) with rounding rules that note every width they compute in
    ``calls``, to check that a build applies α nowhere the width key looks."""

    def wrap(rule: Any) -> Any:
        def width(c: int, num: int, den: int) -> int:
            calls.add((rule.name, c, num, den))
            return rule.width_fn(c, num, den)

        return rule._replace(width_fn=width)

    base = spec.base
    if base is not None:
        base = base._replace(spec=base.spec._replace(rounding=wrap(base.spec.rounding)))
    return spec._replace(rounding=wrap(spec.rounding), base=base)


def _alpha_groups(spec: Spec, alphas: tuple[Fraction, ...]) -> tuple[list[list[int]], list[Site]]:
    """Indices of α values whose widths all round alike (so they build the same network),
    and the width sites. Every site is rounded at every α at once: α = num/den over one
    denominator, in int64 where no intermediate can overflow, else in Python integers."""
    sites = _width_sites(spec)
    floors = [f for _, _, f in sites if f is not None]
    den = math.lcm(*(x.denominator for x in (*alphas, *floors)))
    nums = [x.numerator * (den // x.denominator) for x in alphas]
    top = max([nums[-1], *(int(f * den) for f in floors)])
    exact = all(rule.fits_int64(c, top, den) for rule, c, _ in sites)
    num = np.array(nums, dtype=np.int64 if exact else object)
    keys = np.empty((len(sites), len(alphas)), dtype=num.dtype)
    for i, (rule, c, floor) in enumerate(sites):
        keys[i] = rule.widths(c, num if floor is None else np.maximum(num, int(floor * den)),
                              den)
    # α values are sorted, so equal keys mostly come in runs: compare neighbours, then
    # merge the runs whose keys are equal
    starts = [0, *(np.flatnonzero((keys[:, 1:] != keys[:, :-1]).any(axis=0)) + 1).tolist()]
    groups: dict[tuple[Any, ...], list[int]] = {}
    for begin, end in zip(starts, [*starts[1:], len(alphas)], strict=True):
        groups.setdefault(tuple(keys[:, begin].tolist()), []).extend(range(begin, end))
    return list(groups.values()), sites


def _key_calls(sites: list[Site], alpha: Fraction) -> set[tuple[Any, ...]]:
    """The widths the key computes at ``alpha``, as ``_recording`` notes them."""
    effective = ((rule, c, alpha if floor is None else max(alpha, floor))
                 for rule, c, floor in sites)
    return {(rule.name, c, a.numerator, a.denominator) for rule, c, a in effective if a != 1}


def sweep(spec: Spec | str, alphas: Iterable[Any], resolutions: Iterable[int],
          classes: int | None = None, params: str = "torch", dtype: str = "fp32",
          progress: Callable[[int, int], None] | None = None,
          profile: Profile | None = None) -> Sweep:
    """MACs, parameters and peak activation memory at every α × resolution (R×R input).

    α values are exact: Fractions, ints, decimal strings, or floats read by their shortest
    decimal form (0.35 is 7/20). ``progress(done, total)`` is called as α values finish.
    With a device ``profile``, ``latency`` holds its estimate in ms at every point.
    """
    spec = load_spec(spec) if isinstance(spec, str) else spec
    a = tuple(sorted({_exact(x) for x in alphas}))
    r = np.array(sorted({_resolution(x) for x in resolutions}), dtype=np.int64)
    if not a or not len(r):
        raise MacscalcError("a sweep needs at least one α and one resolution")
    check_points(len(a), len(r))
    convention = Convention(param_convention(params), (), dtype_name(dtype))
    classes = classes or spec.classes
    grid = _Grid(spec, r, classes, convention, profile)
    shape = (len(a), len(r))
    counts = [np.full(shape, -1, dtype=np.int64) for _ in range(3)]  # MACs, params, memory
    latency = np.full(shape, np.nan) if profile is not None else None
    arrays = [*counts, *([latency] if latency is not None else [])]
    errors: list[SweepError] = []
    todo, sites = _alpha_groups(spec, a)
    done = 0
    while todo:
        group = todo.pop(0)
        first = next((i for i in group if a[i] != 1), group[0])
        build_calls: set[tuple[Any, ...]] = set()
        errs = grid.row(_recording(spec, build_calls), a[first], [x[first] for x in counts],
                        None if latency is None else latency[first])
        if len(group) > 1 and not build_calls <= _key_calls(sites, a[first]):
            todo += [[i] for i in group]  # the build applies α out of the key's sight
            continue
        others = [i for i in group if i != first]
        for x in arrays:
            x[others] = x[first]
        errors += [SweepError(tuple(group), tuple(idx.tolist()), f"α {fmt_alpha(a[first])}, "
                              f"{msg}") for idx, msg in errs]
        done += len(group)
        if progress is not None:
            progress(done, len(a))
    return Sweep(spec, a, r, *counts, counts[0] >= 0, tuple(errors), classes, convention,
                 grid.builds, latency, profile)


def check_points(alphas: int, resolutions: int) -> None:
    """The grid's size within the limits, checked before anything is expanded or allocated:
    points bound the arrays, α values the networks built (one per α at worst)."""
    if alphas > MAX_SWEEP_ALPHAS:
        raise MacscalcError(f"{alphas:,} α values are more than a sweep holds "
                            f"({MAX_SWEEP_ALPHAS:,}); take a larger step")
    if alphas * resolutions > MAX_SWEEP_POINTS:
        raise MacscalcError(f"{alphas:,} α × {resolutions:,} resolutions = "
                            f"{alphas * resolutions:,} points, more than a sweep holds "
                            f"({MAX_SWEEP_POINTS:,}); narrow the ranges or take larger steps")


def _exact(x: Any) -> Fraction:
    """A width multiplier within the limits every command applies: up to 16, 6 decimals."""
    try:
        text = str(x) if isinstance(x, (Fraction, np.integer)) else x
        return positive_ratio(text, MAX_ALPHA)
    except ValueError:
        raise MacscalcError(f"width multiplier must be a positive number up to {MAX_ALPHA} "
                            f"(at most 6 decimals), got {_show(x)}") from None


def _resolution(x: Any) -> int:
    if isinstance(x, Fraction) and x.denominator == 1 or isinstance(x, int | np.integer):
        value = int(x)
    else:
        try:
            value = Fraction(repr(x)) if isinstance(x, float) else Fraction(x)
        except (TypeError, ValueError, ZeroDivisionError):
            value = Fraction(0)
    if not (isinstance(value, int) or value.denominator == 1) or not 1 <= value <= MAX_SIZE:
        raise MacscalcError(f"resolution must be a whole number from 1 to {MAX_SIZE:,}, "
                            f"got {_show(x)}")
    return int(value)


def _show(x: Any) -> str:
    if isinstance(x, Fraction):
        return str(x) if x.denominator == 1 else fmt_alpha(x)
    return show(x) if isinstance(x, str) else show(repr(x)).strip("'")


Range = tuple[Fraction, Fraction, Fraction, int]  # start, stop, step, how many values


def _ranges(text: str, what: str) -> list[Range]:
    """The ranges and single values of ``text``, each sized, nothing expanded yet."""
    out: list[Range] = []
    for item in (t.strip() for t in text.split(",")):
        parts = item.split(":")
        try:
            nums = [exact(p) for p in parts]
        except ValueError:
            raise MacscalcError(f"{what} must be numbers, START:STOP:STEP ranges or comma "
                                f"lists of them, got {show(item)}") from None
        if len(nums) > 3:
            raise MacscalcError(f"{what}: a range is START:STOP:STEP, got {show(item)}")
        start, stop, step = (*nums, nums[-1] if len(nums) == 1 else Fraction(1),
                             Fraction(1))[:3]
        if step <= 0 or stop < start:
            raise MacscalcError(f"{what}: {show(item)} needs STOP ≥ START and a positive STEP")
        out.append((start, stop, step, int((stop - start) // step) + 1))
    return out


def value_count(text: str, what: str) -> int:
    """How many values ``text`` names (repeats counted), without expanding its ranges."""
    return sum(n for *_, n in _ranges(text, what))


def parse_values(text: str, what: str) -> list[Fraction]:
    """``START:STOP:STEP`` (inclusive, exact decimals), ``a,b,c``, or both: ``0.25:1:0.25,1.4``.
    ``START:STOP`` steps by 1. Sized first: more than a sweep holds is an error before any
    value is made."""
    ranges = _ranges(text, what)
    total = sum(n for *_, n in ranges)
    if total > MAX_SWEEP_POINTS:
        raise MacscalcError(f"{what} names {total:,} values, more than a sweep holds "
                            f"({MAX_SWEEP_POINTS:,})")
    out: list[Fraction] = []
    for start, _, step, n in ranges:
        if start.denominator == step.denominator == 1:
            out += map(Fraction, range(int(start), int(start) + n * int(step), int(step)))
        else:
            out += [start + i * step for i in range(n)]
    return out


@contextmanager
def progress_bar(stream: Any = None, delay: float = 1.0
                 ) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback drawing a bar on ``stream`` (stderr) once the
    sweep has run for ``delay`` seconds, and only on a terminal."""
    stream = stream or sys.stderr
    start = time.monotonic()
    bar: list[Any] = []

    def update(done: int, total: int) -> None:
        if not bar:
            if not stream.isatty() or time.monotonic() - start < delay:
                return
            from rich.console import Console
            from rich.progress import Progress

            bar.append(Progress(console=Console(file=stream), transient=True))
            bar[0].start()
            bar.append(bar[0].add_task("sweeping α", total=total))
        bar[0].update(bar[1], completed=done)

    try:
        yield update
    finally:
        if bar:
            bar[0].stop()


def alpha_rho(result: Sweep) -> tuple[np.ndarray, int]:
    """α·R as exact integers over a common denominator (α·ρ = value / (den · R₀)); ranking
    by it is ranking by α·ρ."""
    num, den = _alpha_numerators(result)
    return num[:, None] * result.resolutions[None, :], den


def _alpha_numerators(result: Sweep) -> tuple[np.ndarray, int]:
    """α as int64 numerators over their common denominator, where every α·R fits."""
    den = math.lcm(*(x.denominator for x in result.alphas))
    num = [x.numerator * (den // x.denominator) for x in result.alphas]
    if max(num) * int(result.resolutions.max()) >= INT64_LIMIT:
        raise MacscalcError("these α values are too fine to rank exactly; round them")
    return np.array(num, dtype=np.int64), den


def pareto(cost: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    """Points no other point beats: none costs at most as much and gives at least as much,
    one of the two strictly. Identical points stand together."""
    exact = len(cost) and cost.dtype.kind == benefit.dtype.kind == "i"
    top = int(benefit.max()) - int(benefit.min()) + 1 if exact else 0
    if exact and max(-int(cost.min()), int(cost.max())) < INT64_LIMIT // (top + 1):
        order = np.argsort(cost * top + (benefit.max() - benefit))  # cost, then benefit down
    else:
        order = np.lexsort((-benefit, cost))
    c, b = cost[order], benefit[order]
    first = np.ones(len(c), dtype=bool)
    first[1:] = c[1:] != c[:-1]
    run = np.maximum.accumulate(np.where(first, np.arange(len(c)), 0))  # start of equal cost
    best = np.maximum.accumulate(b)  # the most benefit up to here
    cheaper = run > 0
    out = np.zeros(len(c), dtype=bool)
    out[order] = (b == b[run]) & (~cheaper | (best[np.maximum(run - 1, 0)] < b))
    return out


COSTS = ("macs", "params", "memory", "latency")


class Selection(NamedTuple):
    """The points a report shows, as plain rows, and what was counted on the way."""

    rows: list[dict[str, Any]]
    costs: list[str]  # the costs with a frontier: MACs, and params, memory when limited
    marks: list[str]  # the frontiers, ``cost/alpha_rho`` and ``cost/accuracy``
    within_limits: int


def select(result: Sweep, limits: dict[str, float], accuracy: dict[tuple[Fraction, int], str],
           frontier_only: bool = False) -> Selection:
    """The valid points within ``limits`` (MACs, params, memory in bytes), each with its
    published ``accuracy`` (by α, R) and its frontier flags; with ``frontier_only``, only
    the points on a frontier, cheapest first."""
    values = {"macs": result.macs, "params": result.params, "memory": result.memory,
              "latency": result.latency}
    keep = result.valid.copy()
    for name, limit in limits.items():
        keep &= values[name] <= limit
    costs = [c for c in COSTS if c == "macs" or c in limits]
    marks = _frontiers(result, keep, [values[c] for c in costs], costs, accuracy)
    if frontier_only:
        ai, ri = np.nonzero(np.logical_or.reduce(list(marks.values())))
        order = np.argsort(result.macs[ai, ri], kind="stable")
        ai, ri = ai[order], ri[order]
    else:
        ai, ri = np.nonzero(keep)
    rows = _rows(result, ai, ri, {k: v[ai, ri] for k, v in marks.items()}, accuracy)
    return Selection(rows, costs, list(marks), int(keep.sum()))


def _frontiers(result: Sweep, keep: np.ndarray, values: list[np.ndarray], costs: list[str],
               accuracy: dict[tuple[Fraction, int], str]) -> dict[str, np.ndarray]:
    """For each cost, the kept points on its Pareto frontier against α·ρ (``macs/alpha_rho``)
    and, among points with a published accuracy, against it (``macs/accuracy``); masks
    over the grid."""
    at = {a: i for i, a in enumerate(result.alphas)}
    res = {r: j for j, r in enumerate(result.resolutions.tolist())}
    published = [(at[a], res[r], float(v)) for (a, r), v in accuracy.items()
                 if a in at and r in res and keep[at[a], res[r]]]
    pi, pj, score = (np.array(x) for x in zip(*published, strict=True)) if published else [()] * 3
    num, _ = _alpha_numerators(result)
    out = {}
    for name, cost in zip(costs, values, strict=True):
        on = np.zeros(keep.shape, dtype=bool)
        ai, ri = np.nonzero(_candidates(cost, num, result.resolutions, keep))
        on[ai, ri] = pareto(cost[ai, ri], num[ai] * result.resolutions[ri])
        out[f"{name}/alpha_rho"] = on
        if published:
            on = np.zeros(keep.shape, dtype=bool)
            on[pi, pj] = pareto(cost[pi, pj], score)
            out[f"{name}/accuracy"] = on
    return out


def _candidates(cost: np.ndarray, num: np.ndarray, res: np.ndarray, keep: np.ndarray,
                bits: int = 16) -> np.ndarray:
    """The kept points that might be on the frontier of ``cost`` against the capacity
    num[i]·res[j], so that ``pareto`` sorts a few thousand points, not the grid.
    Capacity is cut into 2^bits ranges; a point that costs as much as the cheapest kept
    point of a higher range is beaten by it (more capacity, no more cost) and is left
    out. Rows are taken a block at a time, so no temporary is the grid's size."""
    top = np.inf if cost.dtype.kind == "f" else np.iinfo(cost.dtype).max
    shift = max(0, (int(num.max()) * int(res.max())).bit_length() - bits)
    step = max(1, BLOCK_CELLS // len(res))
    blocks = [slice(i, i + step) for i in range(0, len(num), step)]
    cheapest = np.full((1 << bits) + 1, top, dtype=cost.dtype)
    for rows in blocks:
        kept = keep[rows]
        where = (num[rows, None] * res[None, :]) >> shift
        np.minimum.at(cheapest, where[kept], cost[rows][kept])
    above = np.minimum.accumulate(cheapest[::-1])[::-1][1:]  # cheapest in a higher range
    out = np.zeros(keep.shape, dtype=bool)
    for rows in blocks:
        beat = above[(num[rows, None] * res[None, :]) >> shift]
        # ``top`` above means nothing is known to beat the point: keep it
        out[rows] = keep[rows] & ((cost[rows] < beat) | (beat == top))
    return out


def _rows(result: Sweep, ai: np.ndarray, ri: np.ndarray, marks: dict[str, np.ndarray],
          accuracy: dict[tuple[Fraction, int], str]) -> list[dict[str, Any]]:
    r0 = result.spec.size[0]
    res = result.resolutions[ri].tolist()
    columns = (result.macs[ai, ri].tolist(), result.params[ai, ri].tolist(),
               result.memory[ai, ri].tolist())
    est = (result.latency[ai, ri].round(4).tolist() if result.latency is not None
           else [None] * len(ai))
    keys = [f"pareto_{name.replace('/', '_')}" for name in marks]
    flags = np.column_stack(list(marks.values())).tolist()
    at = {a: i for i, a in enumerate(result.alphas)}
    published = {(at[a], r): v for (a, r), v in accuracy.items() if a in at}
    alpha = {i: (fmt_alpha(result.alphas[i]), result.alphas[i].numerator,
                 result.alphas[i].denominator * r0) for i in set(ai.tolist())}
    micro = Decimal("0.000001")
    return [{"alpha": alpha[i][0], "res": r, "macs": m, "params": p, "memory": b,
             "alpha_rho": (Decimal(alpha[i][1] * r) / alpha[i][2]).quantize(micro),
             "accuracy": published.get((i, r)), "latency_ms": e,
             **dict(zip(keys, f, strict=True))}
            for i, r, m, p, b, e, f in zip(ai.tolist(), res, *columns, est, flags, strict=True)]
