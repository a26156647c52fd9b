"""Removal of the nonlinear residue left by the encoders (private helper of MultiModalCRL).

The encoders of a VAE identify each modality's latent subspace, but with little data
and multi-layer mixing they return a smooth *nonlinear* function of the true latents
(measured on 3 modalities x 3 latents, 2-layer mixing, 2000 samples: the truth is read
from the estimated latents with kernel R² ~0.98 but linear R² only ~0.87). The linear
alignment cannot undo that, and it caps MCC near 0.9.

The model's prior says the latents of all modalities are a *linear* mixture of
independent exogenous noises (the SEM ``z = z B + e``). This step fits, per modality, a
smooth map ``y_m = z_m + f_m(z_m)`` (:class:`~crl_neuro.multimodal._module.LatentMap`)
that makes the stacked corrected latents most likely under that model, with the
change-of-variables term of each map:

* Gaussian noises: the latents are jointly Gaussian, the loss is
  ``½ log det cov(y) - mean_n Σ_m log |det ∂y_m/∂z_m|``;
* Laplace noises: ``y = A e`` with independent Laplace ``e``, an ICA likelihood with an
  unmixing matrix ``W`` learned alongside.

A map acting on one modality at a time cannot create dependence between modalities, so
what it can gain is undoing a warp that breaks the linear dependence *across* them;
with a single modality the loss would merely Gaussianise the latents, so the step
needs two or more.
"""

from __future__ import annotations

import math

import numpy as np


def fit_latent_maps(maps, Z: np.ndarray, noise: str = "gaussian", seed: int = 0, max_iter: int = 1000,
                    patience: int = 50, lr: float = 1e-2):
    """Train one :class:`~crl_neuro.multimodal._module.LatentMap` per modality on latents ``Z``.

    Parameters
    ----------
    maps : torch.nn.ModuleList
        One map per modality (``k_m`` latents each, in the column order of ``Z``).
    Z : ndarray, shape (n_samples, sum k_m)
        Standardised latents of all modalities, stacked.
    noise : {"gaussian", "laplace"}
        Distribution of the exogenous noises of the linear model the corrected latents
        should follow.
    seed : int
        Seed of the validation split (10 % of the rows, early stopping).
    max_iter, patience, lr : int, int, float
        Full-batch Adam epochs, early-stopping patience, learning rate.

    Returns
    -------
    history : TrainingHistory
        Losses; afterwards each map's offset ``b`` centres its output on ``Z``.
    """
    import torch

    from crl_neuro.core.training import fit_torch

    Zt = torch.as_tensor(Z, dtype=torch.float32)
    dims = [int(lm.L.shape[0]) for lm in maps]
    params = list(maps.parameters())
    if noise == "laplace":
        unmix = torch.nn.Parameter(torch.linalg.inv(torch.linalg.cholesky(torch.cov(Zt.T))))
        params.append(unmix)

    def loss(_, batch):
        parts, logdet = [], 0.0
        for lm, zm in zip(maps, torch.split(batch[0], dims, dim=1)):
            y, jac = lm.residual(zm)
            parts.append(y)
            logdet = logdet + torch.linalg.slogdet(jac)[1]
        y = torch.cat(parts, 1)
        if noise == "laplace":
            e = y @ unmix.T
            fit = math.sqrt(2.0) * e.abs().sum(1).mean() - torch.linalg.slogdet(unmix)[1]
        else:
            fit = 0.5 * torch.linalg.slogdet(torch.cov(y.T))[1]
        return fit - logdet.mean()

    history = fit_torch(maps, loss, Z, max_iter=max_iter, batch_size=None, lr=lr,
                        validation_fraction=0.1, patience=patience, parameters=params,
                        random_state=seed)
    with torch.no_grad():  # the SEM prior has zero mean: centre the corrected latents
        for lm, zm in zip(maps, torch.split(Zt, dims, dim=1)):
            lm.b.copy_(-(lm.L @ lm.residual(zm)[0].mean(0)))
    return history


def unwarp_latents(module, Xs: np.ndarray, noise: str, seed: int, max_iter: int = 1000):
    """Fit ``module.latent_maps`` on the encoded means of ``Xs`` (see :func:`fit_latent_maps`)."""
    import torch

    module.cpu().eval()
    with torch.no_grad():
        Z, _ = module.encode(torch.as_tensor(Xs, dtype=torch.float32), apply_maps=False)
    return fit_latent_maps(module.latent_maps, Z.numpy(), noise=noise, seed=seed, max_iter=max_iter)
