"""Torch networks of :class:`CausalImageModel`: a conditional VAE and an attribute head.

Decoder input is (attributes, image-specific latent ``u``); the encoder ``q(u | x, a)``
abducts ``u`` from an image and its attributes. An optional consistency term asks the
(frozen) attribute head to read shuffled attributes back from decoded images. The attribute head is a separate CNN
regressing the (standardized) attributes from the image, used by ``predict_attributes``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F


def _trunk(channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.1),
        nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.1),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(),
    )


class ImageCVAE(nn.Module):
    """Conditional VAE ``p(x | a, u)`` with encoder ``q(u | x, a)`` and an attribute head."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        c, h, w = config["channels"], config["height"], config["width"]
        k, d, width, hidden = config["n_attributes"], config["latent_dim"], config["width_conv"], config["hidden"]
        self.shape = (c, h, w)
        self.h0, self.w0 = -(-h // 4), -(-w // 4)
        self.width = width
        self.beta = float(config.get("beta", 1.0))
        self.consistency = float(config.get("consistency", 0.0))
        self.binary = torch.tensor(config["binary"], dtype=torch.bool)
        feat = 2 * width * 16
        self.enc_trunk = _trunk(c, width)
        self.enc_head = nn.Sequential(nn.Linear(feat + k, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, 2 * d))
        self.dec_fc = nn.Sequential(
            nn.Linear(k + d, hidden), nn.LeakyReLU(0.1),
            nn.Linear(hidden, 2 * width * self.h0 * self.w0), nn.LeakyReLU(0.1),
        )
        self.dec_conv = nn.Sequential(
            nn.ConvTranspose2d(2 * width, width, 4, 2, 1), nn.LeakyReLU(0.1),
            nn.ConvTranspose2d(width, c, 4, 2, 1),
        )
        self.attr_trunk = _trunk(c, width)
        self.attr_head = nn.Sequential(nn.Linear(feat, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, k))

    def encode(self, x: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stats = self.enc_head(torch.cat([self.enc_trunk(x), a], dim=1))
        mean, logvar = stats.chunk(2, dim=1)
        return mean, logvar.clamp(-10, 10)

    def decode_logits(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        z = self.dec_fc(torch.cat([a, u], dim=1)).view(-1, 2 * self.width, self.h0, self.w0)
        out = self.dec_conv(z)
        return out[:, :, : self.shape[1], : self.shape[2]]

    def decode(self, a: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decode_logits(a, u))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.attr_head(self.attr_trunk(x))

    def loss(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        mean, logvar = self.encode(x, a)
        u = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        rec = F.binary_cross_entropy_with_logits(self.decode_logits(a, u), x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mean**2 - logvar.exp()) / len(x)
        head = self._head_loss(self.predict(x), a)
        # the head is scaled like the per-image reconstruction so neither dominates
        total = rec + self.beta * kl + 10.0 * head
        if self.consistency > 0:
            # decode with attributes shuffled independently per column (combinations the
            # data rarely show, as interventions create) and ask the frozen head to read
            # them back: the decoder must follow the attributes rather than put them in u
            idx = torch.argsort(torch.rand(a.shape, device=a.device), dim=0)
            a_new = torch.gather(a, 0, idx)
            x_new = self.decode(a_new, u)
            frozen = {k: v.detach() for k, v in self.named_parameters() if k.startswith("attr_")}
            pred_new = torch.func.functional_call(self, frozen, (x_new,), strict=False)
            total = total + self.consistency * 10.0 * self._head_loss(pred_new, a_new)
        return total

    def _head_loss(self, pred: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        binary = self.binary.to(a.device)
        sq = (pred - a) ** 2
        bce = F.binary_cross_entropy_with_logits(pred, (a > 0).float(), reduction="none")
        return torch.where(binary, bce, sq).sum(dim=1).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Attribute head (the module's call, used to run the head with frozen weights)."""
        return self.predict(x)


def build_module(config: dict[str, Any]) -> ImageCVAE:
    """Build the network described by ``config`` (JSON-able dict)."""
    return ImageCVAE(config)
