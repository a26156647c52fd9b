"""Benchmark: causal image editing (CausalImageModel) vs a graph-ignoring conditional VAE.

Same rendered pendulum data (``make_causal_images``), one run. Baselines: (1) the same
conditional VAE without the attribute SCM (``graph`` = no edges): an edit changes the
named attribute only; (2) a non-causal latent-direction edit (InterFaceGAN-style): an
unconditional VAE whose code moves along the linear direction predicting the attribute.
An independent evaluator (attribute head of a third model trained
on other images) scores the edited images.

Metrics per edited attribute (do-values drawn per image from the attribute's range):

* ``cf_mse``: pixel MSE of the counterfactual against the exact re-rendered truth;
* ``effect``: mean |evaluator(edited)[target] - do| / std(target) (effectiveness);
* ``desc_r``: correlation of the evaluator's descendant predictions with their true
  counterfactual values (cause edits only);
* ``minimality``: mean |change| / std of the evaluator's predictions of the target's
  non-descendants (true graph);
* ``composition``: MSE of the null edit (do = observed value) against the input;
* ``reversibility``: MSE of edit-then-undo against the input.

Run ``python benchmarks/bench_generative.py --quick`` (32x32, ~2 minutes on one core) or
without ``--quick`` (64x64, more images).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from crl_neuro.core.metrics import graph_scores  # noqa: E402
from crl_neuro.datasets.images import make_causal_images  # noqa: E402
from crl_neuro.generative import CausalImageModel  # noqa: E402
from crl_neuro.generative._scm import descendants  # noqa: E402


class LatentDirectionVAE:
    """Non-causal editing baseline (InterFaceGAN-style): an unconditional VAE whose latent
    code is moved along the linear direction that predicts the edited attribute."""

    def __init__(self, latent_dim=8, max_iter=30, random_state=0):
        self.latent_dim, self.max_iter, self.random_state = latent_dim, max_iter, random_state

    def fit(self, images, attributes):
        import torch

        from crl_neuro.core.training import fit_torch
        from crl_neuro.generative._module import build_module

        k = attributes.shape[1]
        config = {"channels": 1, "height": images.shape[1], "width": images.shape[2], "n_attributes": k,
                  "latent_dim": self.latent_dim, "width_conv": 16, "hidden": 128, "beta": 1.0,
                  "binary": [False] * k}
        torch.set_num_threads(1)
        torch.manual_seed(self.random_state)
        self.net = build_module(config)
        zeros = np.zeros((len(images), k), np.float32)  # no attribute input: unconditional
        fit_torch(self.net, lambda m, b: m.loss(b[0], b[1]), (images[:, None].astype(np.float32), zeros),
                  max_iter=self.max_iter, batch_size=64, lr=2e-3, patience=8, random_state=self.random_state)
        self.k = k
        Z = self._encode(images)
        Zc = np.c_[Z, np.ones(len(Z))]
        self.coef = np.linalg.lstsq(Zc, attributes.to_numpy(float), rcond=None)[0]  # (d+1, k)
        self.names = list(attributes.columns)
        self.cov = np.cov(Z, rowvar=False)  # move along Cov(z) w: the likeliest direction
        return self

    def _encode(self, images):
        import torch

        with torch.no_grad():
            x = torch.as_tensor(images[:, None], dtype=torch.float32)
            return self.net.encode(x, torch.zeros(len(x), self.k))[0].numpy()

    def counterfactual(self, images, attributes, do, return_attributes=False):
        import torch

        Z = self._encode(images)
        for name, value in do.items():
            j = self.names.index(name)
            w = self.coef[:-1, j]
            direction = self.cov @ w
            cur = np.c_[Z, np.ones(len(Z))] @ self.coef[:, j]
            Z = Z + ((np.asarray(value, float) - cur) / (w @ direction))[:, None] * direction[None]
        with torch.no_grad():
            out = self.net.decode(torch.zeros(len(Z), self.k), torch.as_tensor(Z, dtype=torch.float32))[:, 0]
        out = out.numpy().astype(images.dtype)
        if return_attributes:
            return out, pd.DataFrame(np.c_[Z, np.ones(len(Z))] @ self.coef, columns=self.names)
        return out


def _edit_metrics(model, evaluator, test, target, values, true_graph, std):
    names = list(test.attributes.columns)
    j = names.index(target)
    x, a = test.images, test.attributes
    true_imgs, true_attrs = test.counterfactual({target: values})
    cf, cf_attrs = model.counterfactual(x, a, {target: values}, return_attributes=True)
    before = evaluator.predict_attributes(x)
    after = evaluator.predict_attributes(cf)
    desc = sorted(descendants(true_graph, j))
    non_desc = [k for k in range(len(names)) if k != j and k not in desc]
    row = {
        "cf_mse": float(np.mean((cf - true_imgs) ** 2)),
        "effect": float(np.mean(np.abs(after[target] - values)) / std[target]),
        "desc_r": float(np.mean([np.corrcoef(after.iloc[:, k], true_attrs.iloc[:, k])[0, 1] for k in desc]))
        if desc else np.nan,
        "minimality": float(np.mean([np.mean(np.abs(after.iloc[:, k] - before.iloc[:, k])) / std.iloc[k]
                                     for k in non_desc])) if non_desc else np.nan,
        "composition": float(np.mean((model.counterfactual(x, a, {target: a[target].to_numpy()}) - x) ** 2)),
    }
    back = model.counterfactual(cf, cf_attrs, {target: a[target].to_numpy()})
    row["reversibility"] = float(np.mean((back - x) ** 2))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32x32 images, fewer samples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size, n_train, n_test, max_iter = (32, 2000, 300, 30) if args.quick else (64, 4000, 500, 40)
    seed = args.seed

    train = make_causal_images(n_train, size, random_state=seed)
    test = make_causal_images(n_test, size, random_state=seed + 1)
    held = make_causal_images(n_train, size, random_state=seed + 2)
    names = list(train.attributes.columns)
    std = train.attributes.std()
    true_graph = train.graph.to_numpy()
    common = dict(max_iter=max_iter, random_state=seed)

    t0 = time.perf_counter()
    evaluator = CausalImageModel(graph=0 * train.graph, **common).fit(held.images, held.attributes)
    t_eval = time.perf_counter() - t0
    models = {}
    times = {}
    t0 = time.perf_counter()
    models["crl_neuro (PC + SCM)"] = CausalImageModel(**common).fit(train.images, train.attributes)
    times["crl_neuro (PC + SCM)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    models["cVAE (no graph)"] = CausalImageModel(graph=0 * train.graph, **common).fit(train.images, train.attributes)
    times["cVAE (no graph)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    models["VAE latent direction"] = LatentDirectionVAE(max_iter=max_iter, random_state=seed).fit(
        train.images, train.attributes)
    times["VAE latent direction"] = time.perf_counter() - t0

    learned = models["crl_neuro (PC + SCM)"].graph_.to_numpy()
    gs = graph_scores(true_graph, learned, directed=True)
    print(f"images {size}x{size}, train {n_train}, test {n_test}; evaluator fit {t_eval:.1f}s")
    print(f"learned attribute graph (PC): F1 {gs['f1']:.2f}, SHD {gs['shd']}")
    ev_before = evaluator.predict_attributes(test.images)
    print("evaluator accuracy on real test images (|err|/std):",
          {c: round(float(np.mean(np.abs(ev_before[c] - test.attributes[c])) / std[c]), 3) for c in names})

    rng = np.random.default_rng(seed + 100)
    rows = []
    for target in ("angle", "light", "shadow_position", "shadow_length"):
        lo, hi = np.quantile(train.attributes[target], [0.05, 0.95])
        values = rng.uniform(lo, hi, n_test)
        for name, model in models.items():
            row = {"edit": f"do({target})", "method": name}
            row.update(_edit_metrics(model, evaluator, test, target, values, true_graph, std))
            row["fit_s"] = times[name]
            rows.append(row)
    df = pd.DataFrame(rows)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(df.to_string(index=False))
    ours = df[df.method == "crl_neuro (PC + SCM)"].cf_mse.to_numpy()
    for base in ("cVAE (no graph)", "VAE latent direction"):
        ratio = df[df.method == base].cf_mse.to_numpy() / ours
        print(f"{base} / crl_neuro counterfactual MSE per edit:", np.round(ratio, 2).tolist())
    return df


if __name__ == "__main__":
    main()
