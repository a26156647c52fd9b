"""Benchmark: causal image editing (CausalImageModel) vs graph-ignoring conditional VAEs.

Both scenes of ``make_causal_images`` (pendulum: angle, light -> shadow position and
length; faces: age -> eyeglasses (binary), age -> hair greyness, free smile and face
width), same data for every method, one run.

Methods:

* ``crl_neuro``: ``CausalImageModel`` with the attribute graph learned by PC.
* ``cVAE (no graph)``: the same trained conditional VAE with the attribute graph
  removed (``CausalImageModel.with_graph(attributes, no edges)``, identical to fitting
  with ``graph=`` no edges and the same seed): an edit changes the named attribute only.
* ``cVAE (associational)``: the same conditional VAE, but an edit also moves every other
  attribute by its linear regression on the edited one (conditioning, "seeing",
  instead of intervening): how a model that knows the attributes' correlations but not
  their directions edits.
* ``VAE latent direction``: a non-causal latent-direction edit (InterFaceGAN-style): an
  unconditional VAE whose code moves along the linear direction predicting the attribute.

An independent evaluator (attribute head of a model trained on other images of the
same scene, rendered with all attributes randomized independently) scores the edited
images. Metrics per edit (do-values drawn per image
from the attribute's 5-95 % range; binary attributes are flipped):

* ``cf_mse``: pixel MSE of the counterfactual against the exact re-rendered truth;
* ``effect``: effectiveness error: mean |evaluator(edited)[target] - do| / std(target)
  (binary: rate of edits the evaluator does not see);
* ``desc_err``: error of the evaluator's descendant predictions against their true
  counterfactual values (same units; cause edits only);
* ``anc_shift``: mean |change| / std of the evaluator's predictions of the target's
  causes (effect edits only: should stay at the noise floor);
* ``minimality``: same for all non-descendants of the target (true graph);
* ``composition``: MSE of the null edit (do = observed value) against the input;
* ``reversibility``: MSE of edit-then-undo against the input.

``anc_null`` is the noise floor of ``anc_shift``: the same shift after the null edit
(reconstruction only).

Run ``python benchmarks/bench_generative.py --quick`` (32x32, 2000 training images, 25
epochs; about 2 CPU minutes for both scenes) or without ``--quick`` (64x64, 2000 images,
40 epochs, ``CausalImageModel``'s default; about 10 CPU minutes); ``--scene`` restricts to one scene.
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

TARGETS = {
    "pendulum": ("angle", "light", "shadow_position", "shadow_length"),
    "faces": ("age", "eyeglasses", "hair_grey", "smile"),
}


def _nchw(images):
    x = images[:, None] if images.ndim == 3 else np.moveaxis(images, 3, 1)
    return np.ascontiguousarray(x, dtype=np.float32)


def _is_binary(col):
    return bool(np.all(np.isin(np.asarray(col, float), (0.0, 1.0))))


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
        x = _nchw(images)
        config = {"channels": x.shape[1], "height": x.shape[2], "width": x.shape[3], "n_attributes": k,
                  "latent_dim": self.latent_dim, "width_conv": 16, "hidden": 128, "beta": 1.0,
                  "binary": [False] * k}
        torch.set_num_threads(1)
        torch.manual_seed(self.random_state)
        self.net = build_module(config)
        zeros = np.zeros((len(images), k), np.float32)  # no attribute input: unconditional
        fit_torch(self.net, lambda m, b: m.loss(b[0], b[1]), (x, zeros),
                  max_iter=self.max_iter, batch_size=64, lr=2e-3, patience=8, random_state=self.random_state)
        self.k = k
        Z = self._encode(images)
        Zc = np.c_[Z, np.ones(len(Z))]
        self.coef = np.linalg.lstsq(Zc, attributes.to_numpy(float), rcond=None)[0]  # (d+1, k)
        self.names = list(attributes.columns)
        self.binary = [_is_binary(attributes[c]) for c in self.names]
        self.cov = np.cov(Z, rowvar=False)  # move along Cov(z) w: the likeliest direction
        return self

    def _encode(self, images):
        import torch

        with torch.no_grad():
            x = torch.as_tensor(_nchw(images))
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
            out = self.net.decode(torch.zeros(len(Z), self.k), torch.as_tensor(Z, dtype=torch.float32)).numpy()
        out = (out[:, 0] if images.ndim == 3 else np.moveaxis(out, 1, 3)).astype(images.dtype)
        if return_attributes:
            attrs = pd.DataFrame(np.c_[Z, np.ones(len(Z))] @ self.coef, columns=self.names)
            for j, b in enumerate(self.binary):
                if b:
                    attrs.iloc[:, j] = (attrs.iloc[:, j] > 0.5).astype(float)
            for name, value in do.items():  # the undo restores the requested values
                attrs[name] = np.broadcast_to(np.asarray(value, float), (len(Z),))
            return out, attrs
        return out


class AssociationalEdit:
    """Graph-ignoring edit that conditions instead of intervening: the other attributes
    move by their linear regression on the edited ones; the cVAE decodes the result."""

    def __init__(self, model, attributes):
        self.model = model
        self.names = list(attributes.columns)
        self.A = attributes.to_numpy(float)
        self.binary = [_is_binary(attributes[c]) for c in self.names]

    def counterfactual(self, images, attributes, do, return_attributes=False):
        n = len(images)
        idx = [self.names.index(k) for k in do]
        A = attributes[self.names].to_numpy(float)
        D = np.column_stack([np.broadcast_to(np.asarray(do[k], float), (n,)) for k in do])
        coef = np.linalg.lstsq(np.c_[self.A[:, idx], np.ones(len(self.A))], self.A, rcond=None)[0]
        new = A + (D - A[:, idx]) @ coef[:-1]
        for j, b in enumerate(self.binary):
            if b:
                new[:, j] = (new[:, j] > 0.5).astype(float)
        new[:, idx] = D
        full = {name: new[:, j] for j, name in enumerate(self.names)}
        out = self.model.counterfactual(images, attributes, full)
        if return_attributes:
            return out, pd.DataFrame(new, columns=self.names, index=attributes.index)
        return out


def _attr_err(pred, true, binary, std):
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(pred != true)) if binary else float(np.mean(np.abs(pred - true)) / std)


def _shift(after, before, cols, std):
    if not cols:
        return np.nan
    return float(np.mean([np.mean(np.abs(after.iloc[:, k] - before.iloc[:, k])) / std.iloc[k] for k in cols]))


def _edit_metrics(model, evaluator, test, target, values, true_graph, std, binary, before):
    names = list(test.attributes.columns)
    j = names.index(target)
    x, a = test.images, test.attributes
    true_imgs, true_attrs = test.counterfactual({target: values})
    cf, cf_attrs = model.counterfactual(x, a, {target: values}, return_attributes=True)
    after = evaluator.predict_attributes(cf)
    desc = sorted(descendants(true_graph, j))
    anc = [k for k in range(len(names)) if j in descendants(true_graph, k)]
    non_desc = [k for k in range(len(names)) if k != j and k not in desc]
    row = {
        "cf_mse": float(np.mean((cf - true_imgs) ** 2)),
        "effect": _attr_err(after[target], values, binary[j], std.iloc[j]),
        "desc_err": float(np.mean([_attr_err(after.iloc[:, k], true_attrs.iloc[:, k], binary[k], std.iloc[k])
                                   for k in desc])) if desc else np.nan,
        "anc_shift": _shift(after, before, anc, std),
        "minimality": _shift(after, before, non_desc, std),
    }
    null = model.counterfactual(x, a, {target: a[target].to_numpy()})
    row["composition"] = float(np.mean((null - x) ** 2))
    # noise floor of anc_shift: the same shift after the null edit (reconstruction only)
    row["anc_null"] = _shift(evaluator.predict_attributes(null), before, anc, std)
    back = model.counterfactual(cf, cf_attrs, {target: a[target].to_numpy()})
    row["reversibility"] = float(np.mean((back - x) ** 2))
    return row


def run_scene(scene, size, n_train, n_test, max_iter, seed):
    """Fit every method on one scene and return (table, notes)."""
    train = make_causal_images(n_train, size, random_state=seed, scene=scene)
    test = make_causal_images(n_test, size, random_state=seed + 1, scene=scene)
    held = make_causal_images(n_train, size, random_state=seed + 2, scene=scene)
    names = list(train.attributes.columns)
    binary = [_is_binary(train.attributes[c]) for c in names]
    std = train.attributes.std()
    true_graph = train.graph.to_numpy()
    no_graph = 0 * train.graph
    common = dict(max_iter=max_iter, random_state=seed)

    # the evaluator sees every attribute randomized independently (the renderer can do
    # that), so it reads each one from its own visual signature, not from correlated
    # proxies (a head trained on observational faces reads age partly from grey hair)
    rng = np.random.default_rng(seed + 3)
    held_imgs, held_attrs = held.counterfactual({c: rng.permutation(held.attributes[c].to_numpy()) for c in names})
    t0 = time.perf_counter()
    evaluator = CausalImageModel(graph=no_graph, **common).fit(held_imgs, held_attrs)
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours = CausalImageModel(**common).fit(train.images, train.attributes)
    t_ours = time.perf_counter() - t0
    cvae = ours.with_graph(train.attributes, no_graph)  # same networks, graph removed
    t0 = time.perf_counter()
    latent = LatentDirectionVAE(max_iter=max_iter, random_state=seed).fit(train.images, train.attributes)
    t_latent = time.perf_counter() - t0
    models = {
        "crl_neuro (PC + SCM)": (ours, t_ours),
        "cVAE (no graph)": (cvae, t_ours),
        "cVAE (associational)": (AssociationalEdit(cvae, train.attributes), t_ours),
        "VAE latent direction": (latent, t_latent),
    }

    gs = graph_scores(true_graph, ours.graph_.to_numpy(), directed=True)
    before = evaluator.predict_attributes(test.images)
    acc = {c: round(_attr_err(before[c], test.attributes[c], b, std[c]), 3) for c, b in zip(names, binary)}
    notes = [
        f"[{scene}] images {size}x{size}{'x3' if train.images.ndim == 4 else ''}, train {n_train}, "
        f"test {n_test}, max_iter {max_iter}; evaluator fit {t_eval:.0f}s",
        f"[{scene}] learned attribute graph (PC + column order): directed F1 {gs['f1']:.2f}, SHD {gs['shd']}",
        f"[{scene}] evaluator error on real test images (|err|/std; binary: error rate): {acc}",
    ]

    rng = np.random.default_rng(seed + 100)
    rows = []
    for target in TARGETS[scene]:
        j = names.index(target)
        if binary[j]:
            values = 1.0 - test.attributes[target].to_numpy()
        else:
            lo, hi = np.quantile(train.attributes[target], [0.05, 0.95])
            values = rng.uniform(lo, hi, n_test)
        kind = "cause" if descendants(true_graph, j) else ("effect" if true_graph[:, j].any() else "free")
        for name, (model, t_fit) in models.items():
            row = {"scene": scene, "edit": f"do({target})", "type": kind, "method": name}
            row.update(_edit_metrics(model, evaluator, test, target, values, true_graph, std, binary, before))
            row["fit_s"] = t_fit
            rows.append(row)
    return pd.DataFrame(rows), notes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32x32 images, fewer samples")
    parser.add_argument("--scene", choices=["both", *TARGETS], default="both")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-iter", type=int, default=None,
                        help="training epochs of every model (default 40, the estimator's default; quick 25)")
    args = parser.parse_args(argv)
    size, n_train, n_test, max_iter = (32, 2000, 300, 25) if args.quick else (64, 2000, 300, 40)
    max_iter = args.max_iter or max_iter
    scenes = list(TARGETS) if args.scene == "both" else [args.scene]

    tables = []
    for scene in scenes:
        df, notes = run_scene(scene, size, n_train, n_test, max_iter, args.seed)
        tables.append(df)
        print("\n".join(notes), flush=True)
    df = pd.concat(tables, ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.4g}".format):
        print(df.to_string(index=False))

    ours_name = "crl_neuro (PC + SCM)"
    print("\nSummary per edit type (baseline cf_mse / crl_neuro cf_mse; geometric mean over edits):")
    summary = []
    for (scene, kind), g in df.groupby(["scene", "type"], sort=False):
        ours = g[g.method == ours_name].set_index("edit")
        row = {"scene": scene, "type": kind}
        for base in g.method.unique():
            if base == ours_name:
                continue
            other = g[g.method == base].set_index("edit")
            row[f"{base}"] = float(np.exp(np.mean(np.log(other.cf_mse / ours.cf_mse))))
        summary.append(row)
    print(pd.DataFrame(summary).to_string(index=False, float_format="{:.3g}".format))
    print("\nEffect edits: shift of the evaluator's predictions of the causes (/std), edit vs null edit:")
    eff = df[df.type == "effect"].groupby(["scene", "method"], sort=False)[["anc_shift", "anc_null"]].mean()
    eff["excess"] = eff.anc_shift - eff.anc_null
    print(eff.to_string(float_format="{:.3f}".format))
    fit = df[df.method == ours_name].groupby("scene").fit_s.first()
    print("\ncrl_neuro fit time (PC + networks, one core): " + ", ".join(f"{k} {v:.0f}s" for k, v in fit.items()))
    return df


if __name__ == "__main__":
    main()
