"""Condensation analysis of a layer's input weights (condensation paper; docs/science.md §4).

The input weight of hidden neuron j is u_j = (w_j, b_j) ∈ R^{d+1} (incoming weights and bias).
D(u, v) = uᵀv / (‖u‖‖v‖). Orientations are clusters of the normalised input weights (u and −u are
different orientations); a line is an orientation together with its opposite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import keys
from .models import Dense, condensation_layers


def input_weights(layer: Dense) -> torch.Tensor:
    """U [m, d+1] = [W | b] of a dense layer (effective weight, so RWF layers work too)."""
    with torch.no_grad():
        return torch.cat([layer.effective_weight(), layer.bias[:, None]], dim=1).to(torch.float64)


def cosine_matrix(u: torch.Tensor) -> torch.Tensor:
    """D [m, m], D_ij = cosine similarity of rows i and j of u [m, k]."""
    unit = u / u.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return unit @ unit.T


def kept_neurons(u: torch.Tensor, rel_norm: float = 0.1) -> torch.Tensor:
    """Indices of neurons whose input-weight norm is at least ``rel_norm`` × the layer's largest (tiny ones
    carry no orientation and are dropped, as in the paper's Fig. 11/18)."""
    norms = u.norm(dim=1)
    finite = torch.isfinite(norms)  # a diverged layer has no orientation to speak of
    if not finite.any():
        return torch.zeros(0, dtype=torch.long)
    return torch.nonzero(finite & (norms >= rel_norm * norms[finite].max())).flatten()


def leading_order(d: torch.Tensor) -> torch.Tensor:
    """Permutation sorting neurons by their entry in the leading eigenvector of D (heat-map ordering)."""
    _, vecs = torch.linalg.eigh(d)
    return torch.argsort(vecs[:, -1])


@dataclass
class Condensation:
    orientations: int  # clusters of normalised input weights (u ≠ −u)
    lines: int  # clusters with u ~ −u merged
    kept: int  # neurons analysed after dropping tiny ones
    similarity: torch.Tensor  # D of the kept neurons in heat-map order [kept, kept]


def _cluster_sizes(unit: torch.Tensor, threshold: float, signed: bool) -> list[int]:
    """Sizes of average-linkage clusters of unit vectors, cut where the mean similarity falls below
    ``threshold`` (similarity cos, or |cos| when u and −u are to be merged into a line)."""
    if len(unit) == 1:
        return [1]
    # SciPy's clustering imported where it is used: a trial actor that never counts condensation starts
    # without it (half a second of every actor's start-up here)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform

    cos = (unit @ unit.T).clamp(-1, 1).numpy()
    dist = 1 - (cos if signed else np.abs(cos))
    np.fill_diagonal(dist, 0)
    tree = linkage(squareform(dist, checks=False), method="average")
    labels = fcluster(tree, t=1 - threshold, criterion="distance")
    return np.bincount(labels)[1:].tolist()


def analyse(u: torch.Tensor, threshold: float = 0.9, rel_norm: float = 0.1, min_fraction: float = 0.1
            ) -> Condensation:
    """Count condensed orientations and lines of input weights u [m, d+1].

    Clusters are average-linkage clusters of the normalised input weights whose mean similarity stays
    ≥ ``threshold``; a cluster counts when it holds at least ``min_fraction`` of the kept neurons (isolated
    stragglers are not an orientation). [our convention: threshold 0.9 on D, norms ≥ 0.1 × max,
    clusters ≥ 10 % of neurons]
    """
    u = u[kept_neurons(u, rel_norm)]
    if len(u) == 0:
        return Condensation(orientations=0, lines=0, kept=0, similarity=torch.zeros(0, 0, dtype=u.dtype))
    unit = u / u.norm(dim=1, keepdim=True)
    min_size = max(1, int(round(min_fraction * len(u))))

    def count(signed: bool) -> int:
        return sum(size >= min_size for size in _cluster_sizes(unit, threshold, signed))

    d = cosine_matrix(u)
    order = leading_order(d)
    return Condensation(orientations=count(True), lines=count(False), kept=len(u), similarity=d[order][:, order])


def layer_counts(model: torch.nn.Module) -> dict[str, float]:
    """``condensation/layer<l>/orientations`` and ``…/lines`` of every layer that
    :func:`sfli_core.models.condensation_layers` names (every hidden layer of an MLP; the layers that read x
    otherwise), numbered from 1 in that order."""
    out: dict[str, float] = {}
    for l, (layer, _) in enumerate(condensation_layers(model), start=1):
        c = analyse(input_weights(layer))
        out[keys.condensation_key(l, keys.ORIENTATIONS)] = c.orientations
        out[keys.condensation_key(l, keys.LINES)] = c.lines
    return out
