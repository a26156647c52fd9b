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
Partial correlations are scale-free, so the search needs no normalisation constraint;
but nearly collinear columns make them sparse without being a solution (two almost
equal latents explain each other, the rest is explained by either): on perfect
encoders of the randomised family the search returned such latents on 6 of 20 draws
(``benchmarks/diag_multimodal_collinear.py``). ``max_condition`` excludes them; it is
off by default because on fitted latents it did not meet the adoption rule there. The
problem is tiny (``n_total x n_total``), solved with Adam from the identity and a few
random orthogonal starts; the lowest objective wins.

Measured limit: when latents of one modality are causally linked, a latent can often be
replaced by its own exogenous noise without making the graph denser (e.g. ``a1 -> a2 <-
b2``: ``a2 - w a1`` has the single neighbour ``b2``), so second-order sparsity does not
single out the simulated latents there. With two modalities it is worse: every
modality's latents can be rotated into canonical pairs with the other modality (CCA),
a perfect matching that is always at least as sparse as the truth. On the randomised
family (``benchmarks/diag_multimodal_align.py``, 20 draws) the returned latents never
score higher than the best linear map onto the truth, and the search run on the true
latents themselves (mixed per modality) keeps them only where their partial-correlation
network is small; elsewhere a re-mixing is sparser than the truth even by count, so
more starts or another sparsity penalty do not help. Sparsity of *nonlinear* dependence
(the family's links are nonlinear) does not single out the truth either
(``benchmarks/diag_multimodal_nldep.py``, draws 0-19): scored by the group L1 (or a
log penalty) of the per-input components of an additive ridge regression of each latent
on the other modalities' latents, the truth beats 50 random within-modality mixtures on
every draw, but its search from a mixed truth finds a mixture scoring lower than the
truth on every draw (mean MCC 0.856 / 0.879 vs 0.868 for the partial-correlation search,
worst draw 0.626 / 0.655 vs 0.706): at the truth a latent depends on more latents of other modalities than its
structural neighbours, and the links' nonlinear terms are too weak to make up for it.
Sparsity of the best-scoring causal DAG (edges of the GRaSP graph under a linear-Gaussian
BIC, ``benchmarks/diag_multimodal_dag.py``, draws 0-19) does not either: the truth has
fewer edges than at least 27 of 30 random within-modality mixtures on 19 draws, but
fewer than the partial-correlation search's solution on only 8 of the 15 draws where
that solution is wrong (MCC < 0.95; a tie on one, the solution sparser on six). On four
of those six the linear BIC already prefers a denser graph than the true DAG at the
truth (the links are nonlinear); on the other two, and on the tie, GRaSP recovers the
true DAG at the truth and a re-mixing still matches or beats its edge count.

:func:`ica_alignment` is the answer when the exogenous noises are non-Gaussian. The
stacked latents are then a linear mixture of independent noises, ``e = (I - B^T) z``, so
ICA over all latents recovers the noises, and each row of the unmixing matrix, written
in the true latents, is one structural equation (a 1 for its own latent, the causal
weights of its parents). Per modality it searches the map that makes these equations
sparsest, weighting the cross-modal coefficients fully and those inside the modality
by ``within_weight``. Replacing ``a2`` by ``a2 - w a1`` then costs a cross-modal
coefficient for every child of ``a2`` in another modality, so the causally linked
latents of a modality are recovered whenever the effect has such a child. When it has
none, the noise representation is observationally equivalent (no method can tell them
apart) and the search returns it.
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


def _block_whiteners(C: np.ndarray, latent_dims: list[int]) -> list[np.ndarray]:
    """Symmetric whitening matrix of each modality's block of the covariance ``C``."""
    out, start = [], 0
    for k in latent_dims:
        vals, vecs = np.linalg.eigh(C[start:start + k, start:start + k])
        out.append(vecs @ np.diag(np.clip(vals, 1e-12, None) ** -0.5) @ vecs.T)
        start += k
    return out


def sparsity_alignment(
    Z: np.ndarray,
    latent_dims: list[int],
    n_starts: int = 24,
    n_iter: int = 300,
    lr: float = 0.02,
    eps: float = 1e-3,
    seed: int = 0,
    max_condition: float | None = None,
) -> tuple[list[np.ndarray], float]:
    """Per-modality linear maps making the latents' partial correlations sparsest.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, sum(latent_dims))
        Latents of all modalities, stacked in modality order.
    latent_dims : list of int
        Number of latents of each modality.
    n_starts : int
        Number of starting points, optimised together as one batch: each modality's
        latents are first whitened (so that orthogonal matrices spread evenly over the
        candidate mixtures), then started from the identity and random orthogonal
        matrices.
    n_iter : int
        Adam steps.
    lr : float
        Adam learning rate.
    eps : float
        Smoothing of the absolute value.
    seed : int
        Seed of the random starts.
    max_condition : float or None
        Starts whose aligned latents have, in some modality, a correlation matrix with a
        condition number above this are not eligible: nearly collinear latents make
        the partial correlations sparse without being a solution. ``None``: no limit;
        when no start meets the limit, the limit is ignored.

    Returns
    -------
    mats : list of ndarray
        ``A_m`` (k_m, k_m) per modality; new latents are ``z_m @ A_m.T``.
    objective : float
        Sum of absolute off-diagonal partial correlations at the solution.
    """
    import torch

    n = int(sum(latent_dims))
    C = np.cov(Z, rowvar=False).reshape(n, n)
    # Whiten each modality: from a badly conditioned block, orthogonal starts around the
    # identity all lie close to one mixture (measured: 3 of 8 random mixings of the true
    # latents were not undone without it, 0 of 8 with it).
    whiteners = _block_whiteners(C, latent_dims)
    Wb = np.zeros((n, n))
    start = 0
    for Wm, k in zip(whiteners, latent_dims):
        Wb[start:start + k, start:start + k] = Wm
        start += k
    S = torch.as_tensor(Wb @ C @ Wb.T, dtype=torch.float64)
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
        ok = np.isfinite(values) & (dets > 1e-8)
        if max_condition is not None:
            conditioned = np.ones_like(ok)
            start = 0
            for m, k in zip(mats, latent_dims):
                block = m @ S[start:start + k, start:start + k] @ m.transpose(1, 2)
                d = block.diagonal(dim1=1, dim2=2).clamp_min(1e-300).rsqrt()
                corr = block * d[:, :, None] * d[:, None, :]
                conditioned &= torch.linalg.cond(corr).numpy() <= max_condition
                start += k
            if (ok & conditioned).any():  # otherwise keep the unconstrained choice
                ok &= conditioned
    values = np.where(ok, values, np.inf)
    if not np.isfinite(values).any():  # degenerate input: keep the latents as they are
        return [np.eye(k) for k in latent_dims], float("nan")
    best = int(np.argmin(values))
    return [m[best].detach().numpy() @ Wm for m, Wm in zip(mats, whiteners)], float(values[best])


def ica_alignment(
    Z: np.ndarray,
    latent_dims: list[int],
    within_weight: float = 0.1,
    n_rounds: int = 3,
    n_starts: int = 16,
    n_iter: int = 400,
    lr: float = 0.02,
    seed: int = 0,
) -> tuple[list[np.ndarray], float]:
    """Per-modality linear maps making the structural equations found by ICA sparsest.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, sum(latent_dims))
        Latents of all modalities, stacked in modality order.
    latent_dims : list of int
        Number of latents of each modality.
    within_weight : float
        Weight of the coefficients of an equation on latents of its own modality,
        relative to the cross-modal ones.
    n_rounds : int
        Rounds of (search the maps, re-assign each equation to its latent).
    n_starts : int
        Random orthogonal starts per modality and round (plus the current map).
    n_iter : int
        Adam steps per search.
    lr : float
        Adam learning rate.
    seed : int
        Seed of FastICA and of the random starts.

    Returns
    -------
    mats : list of ndarray
        ``A_m`` (k_m, k_m) per modality; new latents are ``z_m @ A_m.T``.
    objective : float
        Weighted L1 norm of the equations (unit-norm rows) at the solution.
    """
    import torch
    from scipy.optimize import linear_sum_assignment
    from sklearn.decomposition import FastICA

    dims = [int(k) for k in latent_dims]
    n = sum(dims)
    offsets = np.concatenate([[0], np.cumsum(dims)])
    block = np.repeat(np.arange(len(dims)), dims)
    whiteners = _block_whiteners(np.cov(Z, rowvar=False).reshape(n, n), dims)
    Zw = np.concatenate([(Z[:, offsets[m]:offsets[m + 1]] - Z[:, offsets[m]:offsets[m + 1]].mean(0)) @ Wm.T
                         for m, Wm in enumerate(whiteners)], axis=1)
    ica = FastICA(n, whiten="unit-variance", max_iter=2000, random_state=seed).fit(Zw)
    W = ica.components_ / np.linalg.norm(ica.components_, axis=1, keepdims=True)
    # First guess of the modality of each equation: the block holding most of its row.
    row_block = np.array([np.argmax([np.linalg.norm(w[offsets[m]:offsets[m + 1]]) for m in range(len(dims))])
                          for w in W])
    Wt = torch.as_tensor(W, dtype=torch.float64)
    gen = torch.Generator().manual_seed(int(seed))
    mats = [np.eye(k) for k in dims]
    total = np.nan
    for _ in range(n_rounds):
        total = 0.0
        for m, k in enumerate(dims):
            V = Wt[:, offsets[m]:offsets[m + 1]]
            weights = torch.as_tensor(np.where(row_block == m, within_weight, 1.0), dtype=torch.float64)

            def cost(A, V=V, weights=weights):
                # rows of A are unit vectors (unit-variance latents from whitened ones);
                # the equations in the new latents are V A^{-1}
                U = V[None] @ torch.linalg.inv(A / A.norm(dim=2, keepdim=True))
                return (weights[None, :, None] * torch.sqrt(U ** 2 + 1e-8)).sum(dim=(1, 2))

            q, _ = torch.linalg.qr(torch.randn(n_starts + 1, k, k, generator=gen, dtype=torch.float64))
            q[0] = torch.as_tensor(mats[m])
            A = q.requires_grad_(True)
            opt = torch.optim.Adam([A], lr=lr)
            for _ in range(n_iter):
                opt.zero_grad()
                cost(A).sum().backward()
                opt.step()
            with torch.no_grad():
                An = (A / A.norm(dim=2, keepdim=True)).numpy()
                values = cost(A).numpy()
            values = np.where(np.isfinite(values) & (np.abs(np.linalg.det(An)) > 1e-6), values, np.inf)
            if np.isfinite(values).any():
                best = int(np.argmin(values))
                mats[m] = An[best]
                total += float(values[best])
        # Re-assign equations to latents as LiNGAM does: the permutation that puts the
        # largest coefficients on the diagonal (each equation names its own latent).
        inv = np.zeros((n, n))
        for m, Am in enumerate(mats):
            inv[offsets[m]:offsets[m + 1], offsets[m]:offsets[m + 1]] = np.linalg.inv(Am)
        U = W @ inv
        U = U / np.abs(U).max(axis=1, keepdims=True)
        rows, cols = linear_sum_assignment(-np.log(np.abs(U) + 1e-12))
        row_block = np.empty(n, int)
        row_block[rows] = block[cols]
    return [Am @ Wm for Am, Wm in zip(mats, whiteners)], total
