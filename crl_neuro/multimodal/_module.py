"""Torch module of :class:`~crl_neuro.multimodal.MultiModalCRL`.

Per-modality VAE encoders and decoders share one structured prior over all latents:
a linear-Gaussian structural equation model ``z = z B + e`` with independent Gaussian
exogenous noise ``e``. ``B[i, j]`` is the weight of latent ``i -> j``. Its support is
masked: cross-modal entries are free (both directions, an acyclicity penalty keeps the
graph a DAG) and within-modality entries follow the modality's latent order
(``i -> j`` only for ``i < j``), which costs nothing since an encoder can order its
outputs freely. The L1 penalty on the cross-modal entries is what identifies each
latent component-wise: rotating or mixing a modality's latents makes the cross-modal
links denser (Sun et al., ICLR 2025). :meth:`MultiModalVAE.reparametrize_latents` lets
the estimator apply such a mixing explicitly (see ``_align.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from crl_neuro.core.training import standardize_posterior

_LOG2PI = math.log(2.0 * math.pi)


def _mlp(n_in: int, hidden: int, n_out: int, n_hidden: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(n_hidden):
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def structure_masks(latent_dims: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (n_total, n_total) of the allowed cross- and within-modality entries."""
    block = np.repeat(np.arange(len(latent_dims)), latent_dims)
    n = block.size
    cross = block[:, None] != block[None, :]
    within = (block[:, None] == block[None, :]) & np.triu(np.ones((n, n), bool), k=1)
    return cross, within


class LatentMap(nn.Module):
    """Smooth invertible correction of one modality's latents, ``y = L g(z) + b``.

    ``g`` is a residual flow: ``n_blocks`` steps ``u -> u + W2 tanh(W1 u + c1) + c2``
    with the spectral norms of ``W1`` and ``W2`` capped at 0.95, so each step is the
    identity plus a contraction and ``g`` is invertible everywhere (a single
    unconstrained step folded the latent space on one of four measured problems; a
    single capped step is too stiff to undo strong warps). Every ``W2`` starts at
    zero, so the map starts as the identity; ``L`` and ``b`` (buffers) receive the
    linear re-expressions of the alignment once the map is in use.
    """

    _CAP = 0.95

    def __init__(self, k: int, hidden: int, n_blocks: int = 3) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(k, hidden), nn.Tanh(), nn.Linear(hidden, k)) for _ in range(n_blocks))
        for block in self.blocks:
            nn.init.zeros_(block[2].weight)
            nn.init.zeros_(block[2].bias)
        self.register_buffer("L", torch.eye(k))
        self.register_buffer("b", torch.zeros(k))

    def _capped(self, w: torch.Tensor) -> torch.Tensor:
        norm = torch.linalg.matrix_norm(w, ord=2)
        return w * torch.clamp(self._CAP / (norm + 1e-12), max=1.0)

    def residual(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``g(z)`` (the map before ``L`` and ``b``) and its Jacobian, shape (n, k, k)."""
        eye = torch.eye(z.shape[1], dtype=z.dtype, device=z.device)
        jac = eye.expand(z.shape[0], -1, -1)
        for block in self.blocks:
            w1, w2 = self._capped(block[0].weight), self._capped(block[2].weight)
            t = torch.tanh(z @ w1.T + block[0].bias)
            step = eye + torch.einsum("ih,nh,hj->nij", w2, 1.0 - t ** 2, w1)
            jac = step @ jac
            z = z + t @ w2.T + block[2].bias
        return z, jac

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.residual(z)[0] @ self.L.T + self.b


class MultiModalVAE(nn.Module):
    """Per-modality encoders/decoders with a shared linear-Gaussian SEM prior.

    Parameters
    ----------
    config : dict
        ``n_features`` (list of int), ``latent_dims`` (list of int), ``hidden`` (int),
        ``n_hidden`` (int), optional ``noise`` (``"gaussian"`` or ``"laplace"``, the
        distribution of the SEM's exogenous noises) and ``unwarp`` (int, hidden width of the per-modality
        :class:`LatentMap`, 0 for none): everything needed to rebuild it.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)
        p, k = list(config["n_features"]), list(config["latent_dims"])
        hidden, n_hidden = int(config["hidden"]), int(config["n_hidden"])
        self.n_features, self.latent_dims = p, k
        self.encoders = nn.ModuleList(_mlp(pm, hidden, 2 * km, n_hidden) for pm, km in zip(p, k))
        self.decoders = nn.ModuleList(_mlp(km, hidden, pm, n_hidden) for pm, km in zip(p, k))
        self.dec_log_std = nn.Parameter(torch.full((sum(p),), -1.0))
        n = sum(k)
        width = int(config.get("unwarp", 0))
        self.latent_maps = nn.ModuleList(LatentMap(km, width) for km in k) if width else None
        cross, within = structure_masks(k)
        self.register_buffer("cross_mask", torch.as_tensor(cross, dtype=torch.float32))
        self.register_buffer("within_mask", torch.as_tensor(within, dtype=torch.float32))
        self.B = nn.Parameter(torch.zeros(n, n))
        self.log_noise_std = nn.Parameter(torch.zeros(n))
        # Pin each latent's scale (running batch statistics, like batch norm without
        # affine): the ELBO is scale-free but the L1 penalty is not.
        self.register_buffer("running_mean", torch.zeros(n))
        self.register_buffer("running_var", torch.ones(n))
        self.momentum = 0.05
        # penalty weights, updated by the training schedule (not parameters)
        self.lambda_cross = 0.0
        self.lambda_within = 0.0
        self.lambda_dag = 0.0
        self.beta = 1.0

    # -- pieces ---------------------------------------------------------------------
    def adjacency(self) -> torch.Tensor:
        """Masked SEM weights ``B`` (n_total, n_total), ``B[i, j]`` for ``i -> j``."""
        return self.B * (self.cross_mask + self.within_mask)

    def _split(self, x: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
        return list(torch.split(x, sizes, dim=1))

    def encode(self, x: torch.Tensor, apply_maps: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised posterior means and log-variances of all latents.

        ``apply_maps=False`` returns the means before the latent maps.
        """
        means, logvars = [], []
        for enc, xm, km in zip(self.encoders, self._split(x, self.n_features), self.latent_dims):
            h = enc(xm)
            means.append(h[:, :km])
            logvars.append(h[:, km:].clamp(-12.0, 4.0))
        mean, logvar = torch.cat(means, 1), torch.cat(logvars, 1)
        mean, logvar = standardize_posterior(mean, logvar, self.running_mean, self.running_var,
                                             self.momentum, self.training)
        if self.latent_maps is not None and apply_maps:
            # The maps only act after training of the encoders (see ``MultiModalCRL``);
            # the log-variances keep referring to the latents before them.
            mean = torch.cat([lm(zm) for lm, zm in zip(self.latent_maps, self._split(mean, self.latent_dims))], 1)
        return mean, logvar

    def network_parameters(self) -> list[nn.Parameter]:
        """Parameters of the VAE and its prior, without those of the latent maps."""
        maps = set() if self.latent_maps is None else {id(p) for p in self.latent_maps.parameters()}
        return [p for p in self.parameters() if id(p) not in maps]

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """Exact log-density of the linear SEM (valid for any invertible ``I - B``)."""
        B = self.adjacency()
        e = z - z @ B
        log_std = self.log_noise_std
        if self.config.get("noise", "gaussian") == "laplace":
            # Laplace noises of standard deviation exp(log_std) (scale std / sqrt 2):
            # a Gaussian prior would let the encoders Gaussianise the latents and
            # erase the non-Gaussianity that the ICA alignment needs.
            log_b = log_std - 0.5 * math.log(2.0)
            lp = -(e.abs() / log_b.exp() + log_b + math.log(2.0)).sum(1)
        else:
            lp = -0.5 * ((e / log_std.exp()) ** 2 + 2 * log_std + _LOG2PI).sum(1)
        eye = torch.eye(B.shape[0], device=B.device, dtype=B.dtype)
        return lp + torch.linalg.slogdet(eye - B)[1]

    @torch.no_grad()
    def reparametrize_latents(self, mats: list[np.ndarray]) -> None:
        """Replace each modality's latents ``z_m`` by ``T_m z_m`` without changing the fit.

        The map is folded into the mean head of the encoder (and its running statistics),
        or into the output of the latent map when there is one, and its inverse into the
        first layer of the decoder, so reconstructions are unchanged. ``T_m`` should give
        unit-variance latents. The SEM prior refers to the old latents, so ``B`` and
        the noise scales are reset.
        """
        for m, (enc, dec, km) in enumerate(zip(self.encoders, self.decoders, self.latent_dims)):
            start = sum(self.latent_dims[:m])
            sl = slice(start, start + km)
            T = torch.as_tensor(mats[m], dtype=torch.float32)
            dec[0].weight.copy_(dec[0].weight @ torch.linalg.inv(T))
            if self.latent_maps is not None:
                lm = self.latent_maps[m]
                lm.L.copy_(T @ lm.L)
                lm.b.copy_(T @ lm.b)
                continue
            scale = (self.running_var[sl] + 1e-6).rsqrt()
            G = T * scale[None, :]  # h -> T (h - mu) / sd, as an affine map of h
            head = enc[-1]
            head.weight[:km] = G @ head.weight[:km]
            head.bias[:km] = G @ head.bias[:km]
            self.running_mean[sl] = G @ self.running_mean[sl]
            self.running_var[sl] = 1.0 - 1e-6
        self.reset_prior()

    @torch.no_grad()
    def reset_prior(self) -> None:
        """Forget the SEM prior (``B`` and noise scales), e.g. when the latents changed."""
        self.B.zero_()
        self.log_noise_std.zero_()

    @torch.no_grad()
    def jitter_adjacency(self, generator: torch.Generator, scale: float = 0.05) -> None:
        """Small random ``B``: from exactly zero the gradients of ``B[i, j]`` and
        ``B[j, i]`` are equal and the acyclicity penalty cannot pick a direction."""
        self.B.copy_(scale * torch.randn(self.B.shape, generator=generator))

    def acyclicity(self) -> torch.Tensor:
        """NOTEARS ``tr(exp(B * B)) - n``: zero iff the weighted graph is a DAG."""
        B = self.adjacency()
        return torch.linalg.matrix_exp(B * B).diagonal().sum() - B.shape[0]

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO per sample plus the sparsity and acyclicity penalties."""
        mean, logvar = self.encode(x)
        std = (0.5 * logvar).exp()
        z = mean + std * torch.randn_like(std)
        recon = []
        for dec, zm in zip(self.decoders, self._split(z, self.latent_dims)):
            recon.append(dec(zm))
        xhat = torch.cat(recon, 1)
        ls = self.dec_log_std.clamp(min=math.log(1e-3))
        nll = 0.5 * (((x - xhat) / ls.exp()) ** 2 + 2 * ls + _LOG2PI).sum(1)
        log_q = -0.5 * (((z - mean) / std) ** 2 + logvar + _LOG2PI).sum(1)
        kl = log_q - self.prior_log_prob(z)
        return (nll + self.beta * kl).mean() + self.penalty()

    def penalty(self) -> torch.Tensor:
        """Sparsity (L1, cross- and within-modality weights) and acyclicity penalties."""
        B = self.adjacency()
        return (self.lambda_cross * (B * self.cross_mask).abs().sum()
                + self.lambda_within * (B * self.within_mask).abs().sum()
                + self.lambda_dag * self.acyclicity())

    def prior_loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative log-prior of the posterior means plus penalties (encoders fixed)."""
        return _prior_only_loss(self, x)


def _prior_only_loss(module: "MultiModalVAE", x: torch.Tensor) -> torch.Tensor:
    """Loss of the prior alone on the posterior means (the encoders are kept fixed)."""
    with torch.no_grad():
        mean, _ = module.encode(x)
    return -module.prior_log_prob(mean).mean() + module.penalty()


def build_module(config: dict[str, Any]) -> MultiModalVAE:
    """Build an untrained :class:`MultiModalVAE` from its config."""
    return MultiModalVAE(config)

