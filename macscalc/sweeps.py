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

from macscalc.counting import Convention, param_convention
from macscalc.errors import MacscalcError
from macscalc.graph import Network, build
from macscalc.layers import PARAM_PARTS, Layer, Shape
from macscalc.memory import IN_PLACE, tensors
from macscalc.spec import Spec, UserBlock, load_spec
from macscalc.units import DTYPE_BYTES, dtype_name, fmt_alpha

if TYPE_CHECKING:
    from macscalc.latency import Profile

INT64_LIMIT = 2**63
MAX_POINTS = 20_000_000  # 3 int64 arrays of this size take 480 MB
MAX_RESOLUTION = 2**20

# How each primitive maps its first input's (h, w): a hashable rule, or None (unchanged).
# A kind missing here cannot be swept (tests check that every primitive is listed).
Rule = tuple[Any, ...]


def _window(layer: Any) -> Rule:
    return ("window", layer.k, layer.s, layer.d, layer.padding, False)


SPATIAL: dict[str, Callable[[Any], Rule | None]] = {
    "conv2d": _window,
    "depthwise": _window,
    "pool": lambda p: ("window", p.k, p.s, (1, 1), p.padding, p.ceil),
    "global_pool": lambda _: ("size", (1, 1)),
    "flatten": lambda _: ("size", (1, 1)),
    "adaptive_pool": lambda p: ("size", p.size),
    "upsample": lambda u: ("size", u.size) if u.size is not None else ("scale", u.scale),
    "conv_transpose": lambda t: ("transpose", t.k, t.s, t.d, t.padding, t.output_padding),
    **dict.fromkeys(("linear", "batchnorm", "act", "add", "mul", "dropout", "shuffle",
                     "shiftmax", "concat", "slice", "layernorm", "layer_scale"),
                    lambda _: None),
}
CHANNELS_FROM_SIZE = frozenset({"flatten"})  # output channels h·w·c: the build depends on it


def _rule(layer: Layer) -> Rule | None:
    if layer.kind not in SPATIAL:
        raise MacscalcError(f"sweep cannot follow the spatial size through a {layer.kind!r} "
                            "layer yet (macscalc/sweeps.py SPATIAL); use count per point")
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
    if max(int(h.max()), int(w.max())) * scale >= INT64_LIMIT // MAX_RESOLUTION:
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


class _Plan(NamedTuple):
    """One built network reduced to what varies with resolution."""

    chains: tuple[int, ...]  # the chains its tensors lie on
    macs: np.ndarray  # per chain: MACs per output position, summed over its layers
    params: int
    live: np.ndarray  # rows × chains: channels live while a layer runs (dominated rows dropped)
    flatten: tuple[int, ...]  # chains whose size a flatten turns into channels
    branches: tuple[tuple[int, int], ...]  # (branch point, joined input) chains that differ
    dw: np.ndarray | None = None  # per chain: the depthwise share of ``macs`` (latency)
    fixed_ms: float = 0.0  # the latency terms that do not scale with resolution


class _Skeleton(NamedTuple):
    """What a network's names, inputs, kinds and spatial rules fix, whatever its channels:
    the chain of every output, and when each tensor lives (``memory.tensors``)."""

    chains: tuple[int, ...]
    column: list[int]  # per node: the column of its output's chain in ``chains``
    flatten: tuple[int, ...]
    branches: tuple[tuple[int, int], ...]
    writers: list[int]  # per tensor: the node writing it (-1: the input)
    starts: list[int]  # per tensor: first and last+1 node index, and column
    ends: list[int]
    tensor_columns: list[int]
    running: list[int]  # nodes that allocate (the peak is taken while one of them runs)
    with_macs: list[tuple[int, int]]  # nodes with MACs, and the column whose area they scale
    with_params: list[int]  # nodes with parameters


def _skeleton(net: Network, rules: list[Rule | None], sizes: _Sizes) -> _Skeleton:
    chain = {"input": 0}
    for n, rule in zip(net.nodes, rules, strict=True):
        src = chain[n.inputs[0]]
        chain[n.name] = src if rule is None else sizes.chain(rule, src)
    chains = tuple(sorted(set(chain.values())))
    col = {c: i for i, c in enumerate(chains)}
    index = {n.name: i for i, n in enumerate(net.nodes)}
    ts = tensors(net)
    with_macs = [(i, col[chain[n.name] if _macs_follow(n) == "out" else chain[n.inputs[0]]])
                 for i, n in enumerate(net.nodes) if n.layer.macs(n.in_shapes, n.out)]
    return _Skeleton(
        chains, [col[chain[n.name]] for n in net.nodes],
        tuple(chain[n.inputs[0]] for n in net.nodes if n.layer.kind in CHANNELS_FROM_SIZE),
        _branches(net, chain),
        [index.get(t.name, -1) for t in ts], [max(t.first, 0) for t in ts],
        [t.last + 1 for t in ts], [col[chain[t.name]] for t in ts],
        [i for i, n in enumerate(net.nodes) if n.layer.kind not in IN_PLACE], with_macs,
        [i for i, n in enumerate(net.nodes) if any(n.layer.params(n.in_shapes))])


def _branches(net: Network, chain: dict[str, int]) -> tuple[tuple[int, int], ...]:
    """For each add, the chain where its inputs branch off (nearest shared ancestor along
    first inputs) against each input's, where they differ: what a residual compares to
    choose identity, a projection (whose stride must divide the size evenly) or an error."""
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
    """The rows no other row is ≥ everywhere: the only ones that can hold the peak."""
    rows = np.array(sorted(set(map(tuple, rows.tolist()))), dtype=np.int64)
    if len(rows) < 2:
        return rows
    covers = (rows[:, None, :] >= rows[None, :, :]).all(axis=2)
    return rows[covers.sum(axis=0) == 1]


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


class _Grid:
    """Fills one α group's row of every array, class of resolutions by class."""

    def __init__(self, spec: Spec, res: np.ndarray, classes: int, convention: Convention,
                 profile: Profile | None = None):
        self.spec = spec
        self.coefs = profile.coefs() if profile is not None else None
        self.res = res
        self.classes = classes
        self.picked = [PARAM_PARTS.index(p) for p in convention.params.parts]
        self.nbytes = DTYPE_BYTES[convention.dtype]
        self.sizes = _Sizes(res)
        self.builds = 0
        self._labels: dict[tuple[Any, ...], np.ndarray] = {}
        self._skeletons: dict[tuple[Any, ...], _Skeleton] = {}
        self._checked: set[tuple[Any, ...]] = set()
        self._areas: dict[tuple[Any, ...], tuple[np.ndarray, list[int]]] = {}

    def _build(self, spec: Spec, alpha: Fraction, at: int) -> Network | str:
        self.builds += 1
        r = int(self.res[at])
        try:
            return build(spec, alpha, (r, r), self.classes)
        except MacscalcError as e:
            return e.located()

    def row(self, spec: Spec, alpha: Fraction) -> tuple[Any, ...]:
        """MACs, params, memory and validity at every resolution, and the errors."""
        n = len(self.res)
        out = [np.full(n, -1, dtype=np.int64) for _ in range(3)]
        latency = np.full(n, np.nan)
        errors: list[tuple[np.ndarray, str]] = []
        todo = [(np.arange(n), False)]  # resolution indices, ascending; a class of them?
        while todo:
            idx, is_class = todo.pop()
            net = self._build(spec, alpha, idx[-1])
            if isinstance(net, str):
                # a class fails as a whole; else the ends failing alike say the rest do
                same = is_class or len(idx) == 1 or self._build(spec, alpha, idx[0]) == net
                done = idx if same else idx[-1:]
                errors.append((done, f"{self.res[idx[-1]]}×{self.res[idx[-1]]}: {net}"))
                if len(done) < len(idx):
                    todo.append((idx[:-1], False))
                continue
            plan = self._plan(net, idx[-1])
            labels = self._classes(plan, idx)
            mine = labels == labels[-1]
            self._fill(plan, idx[mine], out, latency)
            todo += [(idx[labels == v], True) for v in np.unique(labels[~mine])]
        return (*out, out[0] >= 0, errors, latency)

    def _plan(self, net: Network, at: int) -> _Plan:
        """Reduce ``net`` (built at resolution index ``at``) to per-chain coefficients."""
        nodes = net.nodes
        rules = [_rule(n.layer) for n in nodes]
        key = (tuple((n.name, n.inputs, n.layer.kind) for n in nodes), tuple(rules))
        sk = self._skeletons.get(key)
        if sk is None:
            sk = self._skeletons[key] = _skeleton(net, rules, self.sizes)
        if (key, at) not in self._checked:
            _check(net, sk, self.sizes, at)
            self._checked.add((key, at))
        macs = [0] * len(sk.chains)
        params = 0
        for i, col in sk.with_macs:
            macs[col] += _per_position(nodes[i])
        for i in sk.with_params:
            params += sum(map(nodes[i].layer.params(nodes[i].in_shapes).__getitem__,
                              self.picked))
        change = np.zeros((len(nodes) + 2, len(sk.chains)), dtype=np.int64)
        width = [nodes[w].out.c if w >= 0 else net.input.c for w in sk.writers]
        np.add.at(change, (sk.starts, sk.tensor_columns), width)
        np.add.at(change, (sk.ends, sk.tensor_columns), [-c for c in width])
        return _Plan(sk.chains, np.array(macs, dtype=object), params,
                     _undominated(np.cumsum(change, axis=0)[sk.running]), sk.flatten,
                     sk.branches, *self._latency_terms(net, sk))

    def _latency_terms(self, net: Network, sk: _Skeleton) -> tuple[np.ndarray | None, float]:
        """For a device profile: the depthwise MACs per position of each chain, and the
        per-layer and per-op terms, which the resolution does not change."""
        if self.coefs is None:
            return None, 0.0
        from macscalc.counting import PARAM_CONVENTIONS, count
        from macscalc.latency import TERMS, is_depthwise, node_features

        dw = [0] * len(sk.chains)
        for i, col in sk.with_macs:
            if is_depthwise(net.nodes[i]):
                dw[col] += _per_position(net.nodes[i])
        coef = dict(zip((t.name for t in TERMS), self.coefs, strict=True))
        fixed = sum(coef[k] * v for f in node_features(count(
            net, Convention(PARAM_CONVENTIONS["torch"]))) for k, v in f.items()
            if k in ("layers", "ops"))
        return np.array(dw, dtype=object), fixed

    def _classes(self, plan: _Plan, idx: np.ndarray) -> np.ndarray:
        """Label each resolution by how its feature-map sizes compare (pairwise, with 1×1,
        with zero; where branches join, whether one divides the other evenly) and by the
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
                flags.append((ha % hb == 0) & (wa % wb == 0) & (ha // hb == wa // wb))
            bits = np.packbits(np.vstack(flags), axis=0)
            flat = [a[c][idx] for c in plan.flatten for a in (self.sizes.h, self.sizes.w)]
            sig = np.ascontiguousarray(np.vstack([bits, *(f.view(np.uint8).reshape(
                len(idx), 8).T for f in flat)]).T)
            text, width, seen = sig.tobytes(), sig.shape[1], {}
            self._labels[key] = np.array([seen.setdefault(text[i:i + width], len(seen))
                                          for i in range(0, len(text), width)])
        return self._labels[key]

    def _fill(self, plan: _Plan, idx: np.ndarray, out: list[np.ndarray],
              latency: np.ndarray) -> None:
        key = (plan.chains, idx.tobytes())
        if key not in self._areas:
            self._areas.clear()  # one class of resolutions at a time, mostly all of them
            area_max = [int(self.sizes.h[c][idx].max()) * int(self.sizes.w[c][idx].max())
                        for c in plan.chains]
            self._areas[key] = (self.sizes.area(plan.chains, idx), area_max)
        area, area_max = self._areas[key]
        bound = max(sum(int(k) * a for k, a in zip(plan.macs, area_max, strict=True)),
                    plan.params,
                    max((sum(int(c) * a for c, a in zip(row, area_max, strict=True))
                         * self.nbytes for row in plan.live), default=0), *area_max)
        if bound >= INT64_LIMIT:
            raise MacscalcError(f"counts up to {bound:,} do not fit 64-bit integers; sweep "
                                "smaller resolutions")
        out[0][idx] = plan.macs.astype(np.int64) @ area
        out[1][idx] = plan.params
        out[2][idx] = (plan.live @ area).max(axis=0) * self.nbytes if len(plan.live) else 0
        if plan.dw is not None and self.coefs is not None:
            dw = (plan.dw.astype(np.int64) @ area).astype(float)
            dense = out[0][idx].astype(float) - dw
            latency[idx] = self.coefs[0] * dense + self.coefs[1] * dw + plan.fixed_ms


def _width_sites(spec: Spec) -> list[tuple[Any, int, Fraction | None]]:
    """Where the builder applies α (``Builder.scaled``): every width field of every row,
    inside the spec's own blocks too, with the row's floor (``width: {min: m}``, or the
    enclosing block row's); the base spec's rows under its own rule."""
    sites: list[tuple[Any, int, Fraction | None]] = []

    def walk(rule: Any, rows: Iterable[Any], outer: Any) -> None:
        for row in rows:
            width = row.width if row.width is not None else outer
            if isinstance(row.item, UserBlock):
                walk(rule, (*row.item.first, *row.item.rest), width)
            elif width != "fixed":
                sites.extend((rule, getattr(row.item, name), width)
                             for name, a in row.item.args.items()
                             if a.width and getattr(row.item, name) not in (None, "classes"))

    if spec.base is not None:
        walk(spec.base.spec.rounding, spec.base.spec.rows, None)
    walk(spec.rounding, spec.rows, None)
    return sites


def _recording(spec: Spec, calls: list[set[tuple[Any, ...]]],
               memo: dict[tuple[Any, ...], int]) -> Spec:
    """``spec`` (and its base) with rounding rules that note every width they compute in
    ``calls[-1]``, to check that a build applies α nowhere the width key looks; results are
    kept in ``memo``, so a build reuses what the key computed."""

    def wrap(rule: Any) -> Any:
        def width(c: int, a: Fraction) -> int:
            key = (rule.name, c, a)
            calls[-1].add(key)
            if key not in memo:
                memo[key] = rule.width_fn(c, a)
            return memo[key]

        return rule._replace(width_fn=width)

    base = spec.base
    if base is not None:
        base = base._replace(spec=base.spec._replace(rounding=wrap(base.spec.rounding)))
    return spec._replace(rounding=wrap(spec.rounding), base=base)


def _alpha_groups(spec: Spec, alphas: tuple[Fraction, ...], memo: dict[tuple[Any, ...], int]
                  ) -> tuple[list[list[int]], list[set[tuple[Any, ...]]]]:
    """Indices of α values whose widths all round alike (so they build the same network),
    and the widths each α's key computed."""
    calls: list[set[tuple[Any, ...]]] = []
    sites = _width_sites(_recording(spec, calls, memo))
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, a in enumerate(alphas):
        calls.append(set())
        key = tuple(rule.width(c, a if floor is None else max(a, floor))
                    for rule, c, floor in sites)
        groups.setdefault(key, []).append(i)
    return list(groups.values()), calls


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
    if len(a) * len(r) > MAX_POINTS:
        raise MacscalcError(f"{len(a) * len(r):,} points are more than a sweep holds "
                            f"({MAX_POINTS:,}); narrow the ranges or take larger steps")
    convention = Convention(param_convention(params), (), dtype_name(dtype))
    classes = classes or spec.classes
    grid = _Grid(spec, r, classes, convention, profile)
    shape = (len(a), len(r))
    macs, n_params, memory = (np.full(shape, -1, dtype=np.int64) for _ in range(3))
    valid = np.zeros(shape, dtype=bool)
    latency = np.full(shape, np.nan)
    errors: list[SweepError] = []
    memo: dict[tuple[Any, ...], int] = {}
    todo, key_calls = _alpha_groups(spec, a, memo)
    done = 0
    while todo:
        group = todo.pop(0)
        first = next((i for i in group if a[i] != 1), group[0])
        build_calls: list[set[tuple[Any, ...]]] = [set()]
        *row, errs, lat = grid.row(_recording(spec, build_calls, memo), a[first])
        if len(group) > 1 and not build_calls[0] <= key_calls[first]:
            todo += [[i] for i in group]  # the build applies α out of the key's sight
            continue
        for arr, values in zip((macs, n_params, memory, valid, latency), (*row, lat),
                               strict=True):
            arr[group] = values
        errors += [SweepError(tuple(group), tuple(idx.tolist()), f"α {fmt_alpha(a[first])}, "
                              f"{msg}") for idx, msg in errs]
        done += len(group)
        if progress is not None:
            progress(done, len(a))
    return Sweep(spec, a, r, macs, n_params, memory, valid, tuple(errors), classes, convention,
                 grid.builds, latency if profile is not None else None, profile)


def _exact(x: Any) -> Fraction:
    try:
        value = Fraction(repr(x)) if isinstance(x, float) else Fraction(x)
    except (TypeError, ValueError, ZeroDivisionError):
        value = Fraction(0)
    if value <= 0:
        raise MacscalcError(f"width multiplier must be a positive number, got {_show(x)}")
    return value


def _resolution(x: Any) -> int:
    if isinstance(x, Fraction) and x.denominator == 1 or isinstance(x, int | np.integer):
        value = int(x)
    else:
        try:
            value = Fraction(repr(x)) if isinstance(x, float) else Fraction(x)
        except (TypeError, ValueError, ZeroDivisionError):
            value = Fraction(0)
    if not (isinstance(value, int) or value.denominator == 1) or not 1 <= value <= MAX_RESOLUTION:
        raise MacscalcError(f"resolution must be a whole number from 1 to {MAX_RESOLUTION}, "
                            f"got {_show(x)}")
    return int(value)


def _show(x: Any) -> str:
    if isinstance(x, Fraction):
        return str(x) if x.denominator == 1 else fmt_alpha(x)
    return repr(x)


def parse_values(text: str, what: str) -> list[Fraction]:
    """``START:STOP:STEP`` (inclusive, exact decimals), ``a,b,c``, or both: ``0.25:1:0.25,1.4``.
    ``START:STOP`` steps by 1."""
    out: list[Fraction] = []
    for item in (t.strip() for t in text.split(",")):
        parts = item.split(":")
        try:
            nums = [Fraction(p.strip()) for p in parts]
        except (ValueError, ZeroDivisionError):
            raise MacscalcError(f"{what} must be numbers, START:STOP:STEP ranges or comma "
                                f"lists of them, got {item!r}") from None
        if len(nums) == 1:
            out.append(nums[0])
            continue
        if len(nums) > 3:
            raise MacscalcError(f"{what}: a range is START:STOP:STEP, got {item!r}")
        start, stop, step = (*nums, Fraction(1))[:3]
        if step <= 0 or stop < start:
            raise MacscalcError(f"{what}: {item!r} needs STOP ≥ START and a positive STEP")
        n = (stop - start) // step + 1
        if n > MAX_POINTS:
            raise MacscalcError(f"{what}: {item!r} has {n:,} values, more than a sweep holds")
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
    den = math.lcm(*(x.denominator for x in result.alphas))
    num = np.array([x.numerator * (den // x.denominator) for x in result.alphas], dtype=object)
    if int(num.max()) * int(result.resolutions.max()) >= INT64_LIMIT:
        raise MacscalcError("these α values are too fine to rank exactly; round them")
    return num.astype(np.int64)[:, None] * result.resolutions[None, :], den


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
    ai, ri = np.nonzero(keep)
    chosen = np.arange(len(ai))
    if frontier_only:
        chosen = np.flatnonzero(np.logical_or.reduce(list(marks.values())))
        chosen = chosen[np.argsort(result.macs[ai[chosen], ri[chosen]], kind="stable")]
    rows = _rows(result, ai[chosen], ri[chosen], {k: v[chosen] for k, v in marks.items()},
                 accuracy)
    return Selection(rows, costs, list(marks), int(keep.sum()))


def _frontiers(result: Sweep, keep: np.ndarray, values: list[np.ndarray], costs: list[str],
               accuracy: dict[tuple[Fraction, int], str]) -> dict[str, np.ndarray]:
    """For each cost, the kept points on its Pareto frontier against α·ρ (``macs/alpha_rho``)
    and, among points with a published accuracy, against it (``macs/accuracy``)."""
    capacity = alpha_rho(result)[0][keep]
    grid = np.full(result.macs.shape, np.nan)
    at = {a: i for i, a in enumerate(result.alphas)}
    res = {r: j for j, r in enumerate(result.resolutions.tolist())}
    for (a, r), value in accuracy.items():
        if a in at and r in res:
            grid[at[a], res[r]] = float(value)
    score = grid[keep]
    published = ~np.isnan(score)
    out = {}
    for name, cost in zip(costs, values, strict=True):
        out[f"{name}/alpha_rho"] = pareto(cost[keep], capacity)
        if published.any():
            on = np.zeros(len(score), dtype=bool)
            on[published] = pareto(cost[keep][published], score[published])
            out[f"{name}/accuracy"] = on
    return out


def _rows(result: Sweep, ai: np.ndarray, ri: np.ndarray, marks: dict[str, np.ndarray],
          accuracy: dict[tuple[Fraction, int], str]) -> list[dict[str, Any]]:
    alphas = [result.alphas[i] for i in ai.tolist()]
    res = result.resolutions[ri].tolist()
    columns = (result.macs[ai, ri].tolist(), result.params[ai, ri].tolist(),
               result.memory[ai, ri].tolist())
    est = (result.latency[ai, ri].round(4).tolist() if result.latency is not None
           else [None] * len(ai))
    keys = [f"pareto_{name.replace('/', '_')}" for name in marks]
    flags = np.column_stack(list(marks.values())).tolist()
    r0 = result.spec.size[0]
    text = {a: fmt_alpha(a) for a in set(alphas)}
    return [{"alpha": text[a], "res": r, "macs": m, "params": p, "memory": b,
             "alpha_rho": (Decimal(a.numerator * r) / (a.denominator * r0)).quantize(
                 Decimal("0.000001")),
             "accuracy": accuracy.get((a, r)), "latency_ms": e,
             **dict(zip(keys, f, strict=True))}
            for a, r, m, p, b, e, f in zip(alphas, res, *columns, est, flags, strict=True)]
