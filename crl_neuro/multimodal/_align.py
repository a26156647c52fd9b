"""Sparsity alignment of each modality's latents (private helper of MultiModalCRL).

A modality's encoder identifies its latent *subspace* from the cross-modal dependence,
but inside that subspace gradient training of the VAE often settles on a mixture of the
true latents: with a Gaussian SEM prior the ELBO is blind to such mixtures and the L1
penalty on ``B`` pulls too weakly to undo them. This step searches the mixtures directly.

For latents ``z`` (all modalities stacked) with covariance ``S`` it finds one
invertible ``k_m x k_m`` matrix ``A_m`` per modality that makes the partial-correlation
matrix of ``(A_1 z_1, ..., A_M z_M)`` sparsest (smoothed L1 of its off-diagonal entries).
The true latents have the sparse Markov network of the latent causal graph; mixing two
latents of one modality adds edges (structural sparsity, Sun et al., ICLR 2025).
Partial correlations are scale-free and blow up for nearly collinear columns, so the
search needs no extra normalisation constraint. The problem is tiny (``n_total x
n_total``), solved with Adam from the identity and a few random orthogonal starts; the
lowest objective wins.

Measured limit: when latents of one modality are causally linked, a latent can often be
replaced by its own exogenous noise without making the graph denser (e.g. ``a1 -> a2 <-
b2``: ``a2 - w a1`` has the single neighbour ``b2``), so second-order sparsity does not
single out the simulated latents there.
"""

from __future__ import annotations

import numpy as np


def _objective(mats, S, eps, latent_dims):
    """Smoothed L1 of the off-diagonal partial correlations, one value per start."""
    import torch

    n = S.shape[0]
    A = torch.zeros(mats[0].shape[0], n, n, dtype=S.dtype)
    start = 0
    for mat, k in zip(mats, latent_dims):
        A[:, start:start + k, start:start + k] = mat
        start += k
    P = torch.linalg.inv(A @ S @ A.transpose(1, 2))
    d = P.diagonal(dim1=1, dim2=2).clamp_min(1e-12).rsqrt()
    R = P * d[:, :, None] * d[:, None, :]
    off = R * (1 - torch.eye(n, dtype=S.dtype))
    return (torch.sqrt(off ** 2 + eps ** 2) - eps).sum(dim=(1, 2))


def sparsity_alignment(
    Z: np.ndarray,
    latent_dims: list[int],
    n_starts: int = 6,
    n_iter: int = 300,
    lr: float = 0.02,
    eps: float = 1e-3,
    seed: int = 0,
) -> tuple[list[np.ndarray], float]:
    """Per-modality linear maps making the latents' partial correlations sparsest.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, sum(latent_dims))
        Latents of all modalities, stacked in modality order.
    latent_dims : list of int
        Number of latents of each modality.
    n_starts : int
        Number of starting points (identity, then random orthogonal matrices), optimised
        together as one batch.
    n_iter : int
        Adam steps.
    lr : float
        Adam learning rate.
    eps : float
        Smoothing of the absolute value.
    seed : int
        Seed of the random starts.

    Returns
    -------
    mats : list of ndarray
        ``A_m`` (k_m, k_m) per modality; new latents are ``z_m @ A_m.T``.
    objective : float
        Sum of absolute off-diagonal partial correlations at the solution.
    """
    import torch

    n = int(sum(latent_dims))
    S = torch.as_tensor(np.cov(Z, rowvar=False), dtype=torch.float64).reshape(n, n)
    gen = torch.Generator().manual_seed(int(seed))
    mats = []
    for k in latent_dims:
        q, _ = torch.linalg.qr(torch.randn(n_starts, k, k, generator=gen, dtype=torch.float64))
        q[0] = torch.eye(k, dtype=torch.float64)
        mats.append(q.requires_grad_(True))
    opt = torch.optim.Adam(mats, lr=lr)
    for _ in range(n_iter):
        opt.zero_grad()
        _objective(mats, S, eps, latent_dims).sum().backward()
        opt.step()
    with torch.no_grad():
        values = _objective(mats, S, 0.0, latent_dims).numpy()
        dets = np.stack([torch.linalg.det(m).abs().numpy() for m in mats]).min(axis=0)
    values = np.where(np.isfinite(values) & (dets > 1e-8), values, np.inf)
    if not np.isfinite(values).any():  # degenerate input: keep the latents as they are
        return [np.eye(k) for k in latent_dims], float("nan")
    best = int(np.argmin(values))
    return [m[best].detach().numpy().copy() for m in mats], float(values[best])
