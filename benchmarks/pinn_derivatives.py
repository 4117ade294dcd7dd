"""How to take a PINN's second derivatives: the cost of one training step (loss on the Laplacian, gradient for
every parameter) of a tanh MLP on `poisson2d`-sized inputs, measured in one run, printed as ratios to what the
tasks do today (nested reverse-mode autograd, `create_graph=True`):

- forward-over-forward `torch.func.jvp` per coordinate (dual tensors), eager;
- Taylor mode by hand ("jet": value, first and second directional derivatives pushed through each layer
  together, one matmul per layer for all directions; MLP with tanh only), eager and `torch.compile`d
  (nested reverse mode cannot be compiled: double backward is unsupported in aot_autograd).

Every variant is first checked against the current one in float64 (Laplacian and parameter gradients).

    python benchmarks/pinn_derivatives.py [--width 64] [--depth 3] [--points 512] [--threads 1] [--no-compile]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.func import jvp


def mlp(d: int, width: int, depth: int) -> torch.nn.Sequential:
    layers, n = [], d
    for _ in range(depth):
        layers += [torch.nn.Linear(n, width), torch.nn.Tanh()]
        n = width
    return torch.nn.Sequential(*layers, torch.nn.Linear(n, 1))


def laplacian_reverse(net, x):
    """What the tasks do (sfli_core.tasks.base.gradient): nested reverse mode."""
    x = x.detach().requires_grad_(True)
    u = net(x)
    g = torch.autograd.grad(u, x, torch.ones_like(u), create_graph=True)[0]
    return sum(torch.autograd.grad(g[:, k:k + 1], x, torch.ones_like(u), create_graph=True)[0][:, k:k + 1]
               for k in range(x.shape[1]))


def laplacian_forward(net, x):
    """Σ_k e_kᵀ H e_k by forward-over-forward jvp."""
    out = 0
    for k in range(x.shape[1]):
        v = torch.zeros_like(x)
        v[:, k] = 1

        def first(y, v=v):
            return jvp(net, (y,), (v,))[1]

        out = out + jvp(first, (x,), (v,))[1]
    return out


def laplacian_jet(net, x):
    """Taylor mode for Linear/tanh stacks: h, ∂_k h, ∂²_k h for every coordinate k, [N], [N, d, W], [N, d, W];
    tanh' = 1 − a², tanh'' = −2a(1 − a²)."""
    n, d = x.shape
    h, dh, d2h = x, torch.eye(d, dtype=x.dtype).expand(n, d, d), torch.zeros(n, d, d, dtype=x.dtype)
    layers = list(net)
    for lin in layers[:-1:2]:
        z, dz, d2z = lin(h), dh @ lin.weight.T, d2h @ lin.weight.T
        a = torch.tanh(z)
        s = 1 - a * a
        h, dh, d2h = a, s.unsqueeze(1) * dz, s.unsqueeze(1) * d2z - 2 * (a * s).unsqueeze(1) * dz * dz
    return (d2h @ layers[-1].weight.T).sum(1)


def step(laplacian, net, x):
    loss = (laplacian(net, x) ** 2).mean()
    return torch.autograd.grad(loss, list(net.parameters()), allow_unused=True)


def per_step_ms(fn, repeats: int) -> float:
    for _ in range(5):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a trial uses 1 per CPU)")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = mlp(2, args.width, args.depth).double()
    x = torch.rand(args.points, 2, dtype=torch.float64)
    reference = laplacian_reverse(net, x)
    ref_grads = step(laplacian_reverse, net, x)
    variants = {"forward jvp": laplacian_forward, "jet": laplacian_jet}
    for name, lap in variants.items():
        err = float((lap(net, x) - reference).abs().max().detach())
        gerr = max(float((a - b).abs().max()) for a, b in zip(step(lap, net, x), ref_grads) if a is not None)
        print(f"{name:12s} float64 agreement: Laplacian {err:.1e}, parameter gradients {gerr:.1e}")
    net.float()
    x = x.float()
    base = per_step_ms(lambda: step(laplacian_reverse, net, x), args.repeats)
    print(f"MLP {args.depth}x{args.width}, {args.points} points, {args.threads} thread(s), float32")
    print(f"  nested reverse (today)    {base:7.2f} ms/step  1.00x")
    for name, lap in variants.items():
        ms = per_step_ms(lambda lap=lap: step(lap, net, x), args.repeats)
        print(f"  {name + ' (eager)':25s} {ms:7.2f} ms/step  {base / ms:.2f}x")
    if not args.no_compile:
        compiled = torch.compile(lambda: step(laplacian_jet, net, x))
        t0 = time.perf_counter()
        compiled()
        cold = time.perf_counter() - t0
        ms = per_step_ms(compiled, args.repeats)
        print(f"  {'jet (compiled)':25s} {ms:7.2f} ms/step  {base / ms:.2f}x   (compilation {cold:.1f} s, "
              f"worth it after {cold / max((base - ms) / 1e3, 1e-9):.0f} steps)")


if __name__ == "__main__":
    main()
