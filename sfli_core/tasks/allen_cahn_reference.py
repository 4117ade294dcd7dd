"""Reference solution of the Allen–Cahn equation by a Fourier-spectral, ETDRK4 solver, cached on disk.

    u_t = d u_xx + 5u − 5u³,  x ∈ [−1, 1) periodic,  u(x, 0) = x² cos(πx).

Space: N Fourier modes on the periodic grid x_j = −1 + 2j/N. Time: exponential time differencing RK4 of
Cox & Matthews with the contour-integral coefficients of Kassam & Trefethen (2005), linear part L = −d k²
(exact in Fourier space), non-linear part N(u) = 5u − 5u³ evaluated in physical space.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np


def cache_dir() -> Path:
    """``$SFLI_CACHE_DIR`` or ``~/.cache/sfli``."""
    return Path(os.environ.get("SFLI_CACHE_DIR", Path.home() / ".cache" / "sfli"))


def solve(diffusion: float, n_x: int = 512, dt: float = 1e-4, t_end: float = 1.0, n_t: int = 201
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (x [n_x], t [n_t], u [n_t, n_x]) with u[i, j] ≈ u(x_j, t_i), t uniform on [0, t_end]."""
    x = -1.0 + 2.0 * np.arange(n_x) / n_x
    k = 2 * np.pi * np.fft.fftfreq(n_x, d=2.0 / n_x)  # wave numbers of the period-2 domain
    lin = -diffusion * k**2
    E, E2 = np.exp(dt * lin), np.exp(dt * lin / 2)
    roots = np.exp(1j * np.pi * (np.arange(1, 33) - 0.5) / 32)  # contour points for the φ-functions
    LR = dt * lin[:, None] + roots[None, :]
    Q = dt * np.real(np.mean((np.exp(LR / 2) - 1) / LR, axis=1))
    f1 = dt * np.real(np.mean((-4 - LR + np.exp(LR) * (4 - 3 * LR + LR**2)) / LR**3, axis=1))
    f2 = dt * np.real(np.mean((2 + LR + np.exp(LR) * (LR - 2)) / LR**3, axis=1))
    f3 = dt * np.real(np.mean((-4 - 3 * LR - LR**2 + np.exp(LR) * (4 - LR)) / LR**3, axis=1))

    def nonlinear(v_hat: np.ndarray) -> np.ndarray:
        u = np.real(np.fft.ifft(v_hat))
        return np.fft.fft(5 * u - 5 * u**3)

    t_out = np.linspace(0.0, t_end, n_t)
    steps_per_out = round((t_end / (n_t - 1)) / dt)
    if not np.isclose(steps_per_out * dt, t_end / (n_t - 1)):
        raise ValueError("dt must divide the output interval t_end/(n_t − 1)")
    v = np.fft.fft(x**2 * np.cos(np.pi * x))
    u_out = np.empty((n_t, n_x))
    u_out[0] = np.real(np.fft.ifft(v))
    for i in range(1, n_t):
        for _ in range(steps_per_out):
            Nv = nonlinear(v)
            a = E2 * v + Q * Nv
            Na = nonlinear(a)
            b = E2 * v + Q * Na
            Nb = nonlinear(b)
            c = E2 * a + Q * (2 * Nb - Nv)
            Nc = nonlinear(c)
            v = E * v + Nv * f1 + 2 * (Na + Nb) * f2 + Nc * f3
        u_out[i] = np.real(np.fft.ifft(v))
    return x, t_out, u_out


def reference(diffusion: float, n_x: int = 512, dt: float = 1e-4, n_t: int = 201
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``solve`` with its result cached in ``cache_dir()`` (keyed by every argument)."""
    key = hashlib.sha1(f"ac-etdrk4-v1|{diffusion!r}|{n_x}|{dt!r}|{n_t}".encode()).hexdigest()[:16]
    path = cache_dir() / f"allen_cahn_{key}.npz"
    if path.exists():
        data = np.load(path)
        return data["x"], data["t"], data["u"]
    x, t, u = solve(diffusion, n_x=n_x, dt=dt, n_t=n_t)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, x=x, t=t, u=u)
    os.replace(tmp, path)  # atomic: parallel trials never read a half-written file
    return x, t, u
