"""Taylor mode: u(x), ∇u(x) and pure second derivatives ∂²u/∂x_k² in one forward pass (docs/science.md §5).

A :class:`Jet` carries, for a hidden quantity h(x) [..., N, W], its value, its first derivatives along k
directions v_1 … v_k of the input space (the rows of V [k, d]; by default the coordinate axes, V = I, k = d)
and its second derivatives along the directions a PDE needs:

    value [..., N, W],   d1 [..., N, k, W] = ∂h/∂v_j = ∇h·v_j,   d2 [..., N, m, W] = v_jᵀ(∇²h)v_j (j ∈ second).

Two reductions carry fewer streams when a PDE needs less (same numbers, fewer and smaller kernels):
* a PDE that needs one combination of first derivatives only (advection's u_t + c u_x = ∇u·(c, 1)) asks for
  that direction alone: one stream instead of d;
* a PDE that needs the Laplacian only asks for the *sum* of its second derivatives, d2 [..., N, 1, W] =
  Σ_{j ∈ second} v_jᵀ(∇²h)v_j, whose rules below are the sums over j of the per-direction ones ("forward
  Laplacian", Li et al. 2023): one stream instead of m;
* a PDE whose derivatives enter through one linear operator L h = Σ_{j ∈ second} v_jᵀ(∇²h)v_j + b·∇h (Allen–Cahn's
  u_t − d u_xx) asks for the sum with a *drift* b [d]: a first derivative propagates by the linear part of the
  second-order rules (∂_b σ(z) = σ'(z) ∂_b z), so the summed stream carries b·∇h too when the input's is seeded
  with b instead of 0 ("collapsed" Taylor mode, Dangel et al. 2024): the first-order stream along b is dropped.

Each operation maps the three together by the chain rule, e.g. for an affine map and an elementwise σ:

    W h + b:  (W v + b,  W d1,  W d2)
    σ(z):     (σ(z),  σ'(z) ∂z,  σ'(z) ∂²z + σ''(z) (∂z)²)
    a ⊙ b:    (a b,  ∂a b + a ∂b,  ∂²a b + 2 ∂a ∂b + a ∂²b)

so a network built from torch operations runs on a Jet unchanged (``__torch_function__`` routes them here).
The training step then needs one reverse pass for the parameter gradients instead of nested reverse passes
(``create_graph=True``), which costs fewer, larger kernels and can be compiled. The derivatives are exact (the
same functions as nested autograd, to round-off); an operation outside :data:`UNARY` and the arithmetic below
raises :class:`TaylorUnsupported`, and the caller falls back to nested autograd (the reference path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch.func import jvp


class TaylorUnsupported(TypeError):
    """An operation Taylor mode has no rule for: use nested autograd for this model."""


def _tanh(z):
    a = torch.tanh(z)
    s = 1 - a * a
    return a, s, -2 * a * s


def _sigmoid(z):
    a = torch.sigmoid(z)
    s = a * (1 - a)
    return a, s, s * (1 - 2 * a)


def _sin(z):
    s, c = torch.sin(z), torch.cos(z)
    return s, c, -s


def _cos(z):
    s, c = torch.sin(z), torch.cos(z)
    return c, -s, -c


def _exp(z):
    e = torch.exp(z)
    return e, e, e


def _generic(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """(σ, σ', σ'') of any elementwise σ by forward-over-forward mode (one jvp inside another)."""

    def derivatives(z):
        one = torch.ones_like(z)

        def first(t):
            return jvp(fn, (t,), (one,))

        (value, slope), (_, curvature) = jvp(first, (z,), (one,))
        return value, slope, curvature

    return derivatives


# elementwise functions: closed forms where they are cheap, forward-over-forward mode for the rest
# (the method spellings z.tanh() etc., which F.tanh and F.sigmoid call without a torch-function dispatch, are
# Jet methods)
UNARY: dict[Callable, Callable] = {
    torch.tanh: _tanh, torch.Tensor.tanh: _tanh,
    torch.sigmoid: _sigmoid, torch.Tensor.sigmoid: _sigmoid,
    torch.sin: _sin, torch.Tensor.sin: _sin,
    torch.cos: _cos, torch.Tensor.cos: _cos,
    torch.exp: _exp, torch.Tensor.exp: _exp,
}
GENERIC_UNARY = (F.relu, torch.relu, F.leaky_relu, F.gelu, F.silu, F.softplus, F.elu, torch.erf, torch.log1p)


def _expand(t: torch.Tensor) -> torch.Tensor:
    """A constant [..., N, W] tensor broadcast against a derivative [..., N, d, W]."""
    return t.unsqueeze(-2) if t.dim() >= 2 else t


class Jet:
    """value [..., N, W], d1 [..., N, k, W] (or broadcastable to it), d2 [..., N, m, W] ([..., N, 1, W] when
    ``summed``) or None (zero); ``second`` the m directions (rows of d1) whose second derivatives d2 holds, in
    that order, or whose sum it holds when ``summed``."""

    __slots__ = ("value", "d1", "d2", "second", "summed")

    def __init__(self, value: torch.Tensor, d1: torch.Tensor, d2: torch.Tensor | None, second: tuple[int, ...],
                 summed: bool = False):
        self.value, self.d1, self.d2, self.second, self.summed = value, d1, d2, second, summed

    @classmethod
    def seed(cls, x: torch.Tensor, second: Sequence[int], directions: torch.Tensor | None = None,
             summed: bool = False, drift: torch.Tensor | None = None) -> Jet:
        """The input itself: ∂x/∂v_j = v_j (kept as V [k, d], broadcast; V = I by default), ∂²x = 0; with a
        ``drift`` b [d] (``summed`` only), the summed stream's seed is ∂_b x = b (kept as [1, d], broadcast)."""
        v = torch.eye(x.shape[-1]) if directions is None else torch.as_tensor(directions)
        if drift is not None and not summed:
            raise ValueError("a drift adds to the summed second derivatives: ask for summed=True")
        d2 = None if drift is None else torch.as_tensor(drift, dtype=x.dtype, device=x.device).reshape(1, -1)
        return cls(x, v.to(dtype=x.dtype, device=x.device), d2, tuple(second), summed)

    @property
    def shape(self) -> torch.Size:
        return self.value.shape

    @property
    def dtype(self) -> torch.dtype:
        return self.value.dtype

    @property
    def device(self) -> torch.device:
        return self.value.device

    def _like(self, value, d1, d2) -> Jet:
        return Jet(value, d1, d2, self.second, self.summed)

    def _d1_second(self) -> torch.Tensor:
        return self.d1[..., list(self.second), :]

    def _second_product(self, other: Jet) -> torch.Tensor:
        """∂_j a ∂_j b for j ∈ second [..., N, m, W] (a = self, b = other), summed over j when ``summed``."""
        product = self._d1_second() * other._d1_second()
        return product.sum(-2, keepdim=True) if self.summed else product

    def _zero_second(self) -> torch.Tensor:
        """A d2 of zeros (the second derivatives of a function affine in x)."""
        return torch.zeros_like(self.d1[..., :1, :] if self.summed else self._d1_second())

    # ---- the rules -----------------------------------------------------------------------------------
    def linear(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Jet:
        wt = weight.T
        return self._like(F.linear(self.value, weight, bias), self.d1 @ wt,
                          None if self.d2 is None else self.d2 @ wt)

    def unary(self, derivatives: Callable) -> Jet:
        value, slope, curvature = derivatives(self.value)
        slope, curvature = slope.unsqueeze(-2), curvature.unsqueeze(-2)
        d2 = None if self.d2 is None else slope * self.d2
        if self.second:
            curved = curvature * self._second_product(self)
            d2 = curved if d2 is None else d2 + curved
        return self._like(value, slope * self.d1, d2)

    # the method spellings of the closed forms: z.tanh(), and F.tanh / F.sigmoid, which call the method (those two
    # only eagerly: Dynamo keeps them whole, so under torch.compile they break the graph)
    def tanh(self) -> Jet:
        return self.unary(_tanh)

    def sigmoid(self) -> Jet:
        return self.unary(_sigmoid)

    def sin(self) -> Jet:
        return self.unary(_sin)

    def cos(self) -> Jet:
        return self.unary(_cos)

    def exp(self) -> Jet:
        return self.unary(_exp)

    def __mul__(self, other) -> Jet:
        if not isinstance(other, Jet):
            c = torch.as_tensor(other, dtype=self.value.dtype, device=self.value.device)
            ce = _expand(c)
            return self._like(self.value * c, self.d1 * ce, None if self.d2 is None else self.d2 * ce)
        a0, b0 = _expand(self.value), _expand(other.value)
        d2 = 2 * self._second_product(other) if self.second else None
        for da, b in ((self.d2, b0), (other.d2, a0)):
            if da is not None:
                d2 = da * b if d2 is None else d2 + da * b
        return self._like(self.value * other.value, self.d1 * b0 + a0 * other.d1, d2)

    __rmul__ = __mul__

    def __add__(self, other) -> Jet:
        if not isinstance(other, Jet):
            return self._like(self.value + other, self.d1, self.d2)
        d2 = other.d2 if self.d2 is None else self.d2 if other.d2 is None else self.d2 + other.d2
        return self._like(self.value + other.value, self.d1 + other.d1, d2)

    __radd__ = __add__

    def __neg__(self) -> Jet:
        return self._like(-self.value, -self.d1, None if self.d2 is None else -self.d2)

    def __sub__(self, other) -> Jet:
        return self + (-other)

    def __rsub__(self, other) -> Jet:
        return (-self) + other

    def __truediv__(self, other) -> Jet:
        if isinstance(other, Jet):
            raise TaylorUnsupported("division by a function of x")
        return self * (1 / torch.as_tensor(other))

    def __matmul__(self, other: torch.Tensor) -> Jet:
        return self.linear(other.T, None)

    # ---- torch functions on a Jet ----------------------------------------------------------------------
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in UNARY or func in GENERIC_UNARY:
            rule = UNARY.get(func) or _generic(functools.partial(_positional_tail, func, args[1:], kwargs))
            return args[0].unary(rule)
        if func is F.linear:
            return args[0].linear(*args[1:], **kwargs)
        if func is torch.cat:
            return _cat(*args, **kwargs)
        operation = _BINARY.get(func)
        if operation is not None:
            return operation(*args)
        raise TaylorUnsupported(f"no Taylor-mode rule for {getattr(func, '__qualname__', func)}")


def _positional_tail(func, rest, kwargs, z):
    return func(z, *rest, **kwargs)


def _cat(jets: Sequence[Jet], dim: int = -1) -> Jet:
    if dim not in (-1, jets[0].value.dim() - 1):
        raise TaylorUnsupported("torch.cat of jets is supported along the feature (last) dimension only")
    n = jets[0].value.shape[:-1]
    d1 = torch.cat([j.d1.expand(*n, *j.d1.shape[-2:]) for j in jets], -1)
    if all(j.d2 is None for j in jets):
        d2 = None
    else:
        d2 = torch.cat([(j.d2 if j.d2 is not None else j._zero_second()).expand(*n, -1, -1) for j in jets], -1)
    return jets[0]._like(torch.cat([j.value for j in jets], -1), d1, d2)


# the Jet's methods are called by name: under Dynamo an operator here would be routed back as a torch function
def _mul(a, b):
    return a.__mul__(b) if isinstance(a, Jet) else b.__mul__(a)


def _add(a, b):
    return a.__add__(b) if isinstance(a, Jet) else b.__add__(a)


def _sub(a, b):
    return a.__sub__(b) if isinstance(a, Jet) else b.__rsub__(a)


def _matmul(a, b):
    if not isinstance(a, Jet):
        raise TaylorUnsupported("a matrix product with the jet on the right (write F.linear(x, W) for x @ W.T)")
    return a.__matmul__(b)


# Tensor methods and torch functions of two operands, either of which may be the jet (Dynamo routes the
# Python operators through these)
_BINARY = {}
for _rule, _funcs in {
    _mul: (torch.mul, torch.Tensor.mul, torch.Tensor.__mul__, torch.Tensor.__rmul__),
    _add: (torch.add, torch.Tensor.add, torch.Tensor.__add__, torch.Tensor.__radd__),
    _sub: (torch.sub, torch.Tensor.sub, torch.Tensor.__sub__),
    (lambda a, b: _sub(b, a)): (torch.rsub, torch.Tensor.__rsub__),
    _matmul: (torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__),
    Jet.__neg__: (torch.neg, torch.Tensor.neg, torch.Tensor.__neg__),
}.items():
    _BINARY.update(dict.fromkeys(_funcs, _rule))


def taylor_derivatives(forward: Callable[[Jet], Jet], x: torch.Tensor, second: Sequence[int],
                       directions: torch.Tensor | None = None, summed: bool = False,
                       drift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(u [..., N, 1], (∇u·v_j)_j [..., N, k], (v_jᵀ(∇²u)v_j)_{j ∈ second} [..., N, m] or None) of a scalar field
    ``forward`` (a function of a Jet, e.g. ``lambda j: model(j)[0]``) at x [..., N, d], in one pass; the
    directions v_j are the rows of ``directions`` [k, d] (default: the coordinate axes, giving ∇u and ∂²u/∂x_j²).
    ``summed``: the last is their sum Σ_{j ∈ second} [..., N, 1] (the Laplacian when V = I, second = all), plus
    ∇u·b with a ``drift`` b [d]."""
    seed = Jet.seed(x, second, directions, summed, drift)
    out = forward(seed)
    if not isinstance(out, Jet):
        raise TaylorUnsupported("the model's output does not depend on its input through supported operations")
    grad = out.d1.expand(*out.value.shape[:-1], seed.d1.shape[-2], 1)[..., 0]
    if not second and drift is None:
        return out.value, grad, None
    d2 = out.d2 if out.d2 is not None else out._zero_second()
    return out.value, grad, d2.expand(*out.value.shape[:-1], d2.shape[-2], 1)[..., 0]


class TaylorField:
    """A scalar field x ↦ u(x) whose derivatives come from one Taylor-mode pass (see
    :func:`sfli_core.tasks.base.derivatives`). ``forward`` maps x [..., N, d] (or a Jet) to u [..., N, 1];
    ``jet`` (default: Taylor mode through ``forward``) maps (x, second, directions, summed, drift) to
    :func:`taylor_derivatives`' triple."""

    def __init__(self, forward: Callable, jet: Callable | None = None):
        self.forward = forward
        self.jet = jet or functools.partial(taylor_derivatives, forward)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def derivatives(self, x: torch.Tensor, second: tuple[int, ...], directions: torch.Tensor | None = None,
                    summed: bool = False, drift: torch.Tensor | None = None):
        return self.jet(x, second, directions, summed, drift)
