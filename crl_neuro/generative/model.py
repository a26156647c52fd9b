"""CausalImageModel: image generation and editing that respects causal relations among attributes.

Design (Deep-SCM style, abduction - action - prediction):

* **Attribute SCM.** A DAG over the labelled attributes (given, or learned with PC and
  oriented into a DAG) with one additive-noise mechanism per attribute: a polynomial
  ridge regression on its parents (``degree=1`` is linear) for continuous attributes, a
  logistic model with a uniform threshold noise for binary ones. Abduction of an
  attribute's exogenous noise is its residual.
* **Image model.** A conditional VAE whose decoder takes (attributes, ``u``), ``u`` an
  image-specific latent for everything the attributes do not describe; the encoder
  ``q(u | x, a)`` abducts ``u``. A separate CNN head predicts attributes from images.
* **Edits.** ``counterfactual`` abducts the attribute noise and ``u``, sets the ``do``
  targets, recomputes their descendants with the *abducted* noise and decodes with the
  same ``u``: editing an effect leaves its causes unchanged, editing a cause moves its
  effects. ``intervene`` does the same but resamples the exogenous noise of the
  descendants from the training residuals.
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np
import pandas as pd

from crl_neuro.core.graphs import GraphMixin
from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    check_is_fitted,
    fill_doc,
    logger_verbosity,
)
from crl_neuro.core.validation import check_float, check_int, check_real
from crl_neuro.generative import _scm

__all__ = ["CausalImageModel"]


def _check_images(images: Any, name: str = "images", shape: tuple | None = None) -> np.ndarray:
    if images is None or isinstance(images, (str, bytes, pd.DataFrame)):
        raise TypeError(f"{name} must be an array of shape (n, H, W) or (n, H, W, C), got {type(images).__name__}")
    arr = np.asarray(images)
    check_real(arr, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must contain numbers, got dtype {arr.dtype}")
    if arr.ndim not in (3, 4):
        raise ValueError(f"{name} must have shape (n, H, W) or (n, H, W, C), got shape {arr.shape}")
    # Range checks on the caller's dtype: a cast to float32 first would turn 1e200 into inf.
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must be floats in [0, 1], got values in [{arr.min():.3g}, {arr.max():.3g}]")
    arr = arr.astype(np.float32)
    if len(arr) < 1:
        raise ValueError(f"{name} must contain at least one image")
    if shape is not None and arr.shape[1:] != tuple(shape):
        raise ValueError(f"{name} must have image shape {tuple(shape)} as in fit, got {arr.shape[1:]}")
    return arr


@fill_doc
class CausalImageModel(GraphMixin, BaseCRLEstimator):
    """Causally consistent image generation, interventions and counterfactual edits.

    Parameters
    ----------
    graph : DataFrame | None
        Attributes x attributes adjacency (``graph.loc[a, b] != 0`` means a -> b; all
        zeros = no edges). ``None`` learns it with PC (Fisher-z) on the attributes;
        undirected edges are then oriented in column order.
    alpha : float
        PC significance level.
    degree : int
        Polynomial degree of the attribute mechanisms (1 = linear).
    scm_alpha : float
        Ridge penalty of the mechanisms (inverse C for binary ones).
    latent_dim : int
        Size of the image-specific latent ``u``.
    width : int
        Channels of the first convolution (the second has twice as many).
    hidden : int
        Width of the fully connected layers.
    beta : float
        Weight of the KL term of the VAE.
    consistency : float
        Weight of the attribute-consistency term: images decoded with attributes
        shuffled across the batch must be read back as those attributes by the (frozen)
        attribute head. It can keep the decoder from ignoring an attribute that
        correlates with others, but the head learns correlated proxies too (it reads
        age partly from grey hair), so on strongly correlated attributes it can also
        distort edits; 0 (default) disables it.
    max_iter : int
        Maximum number of training epochs.
    batch_size : int
        Mini-batch size.
    lr : float
        Adam learning rate.
    n_iter_no_change : int | None
        Early-stopping patience (epochs) on a 10 % validation split.
    %(device)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    graph_ : DataFrame
        Attributes x attributes DAG used (``[a, b] != 0`` means a -> b).
    pc_graph_ : Graph | None
        The CPDAG found by PC (``None`` when ``graph`` was given).
    attribute_names_ : list of str
    binary_ : list of bool
        Which attributes are binary (values in {0, 1}).
    mechanisms_ : list of dict
        Fitted mechanism per attribute (standardized scale).
    noise_ : DataFrame
        Abducted exogenous noise of the training attributes (standardized scale).
    module_ : torch.nn.Module
        The conditional VAE and attribute head.
    image_shape_ : tuple
        ``(H, W)`` or ``(H, W, C)``.
    history_ : dict
        Training history.
    n_iter_ : int
        Number of training epochs run.
    attr_mean_, attr_scale_ : ndarray, shape (n_attributes,)
        Standardization of the attributes (binary ones are coded -1/+1 internally).
    order_ : list of int
        A topological order of ``graph_``.
    config_ : dict
        Architecture of ``module_``.

    Notes
    -----
    Edited and generated images are float32. The attribute mechanisms are additive-noise
    models, so abduction is exact only when the true mechanisms are (approximately)
    additive in their noise; ``u`` is whatever the encoder puts in it, so style that the
    VAE does not reconstruct is lost in edits too.
    """

    _graphs = {"attributes": ("graph_", "directed"), "pc": ("pc_graph_", "cpdag")}

    # Checked by crl_neuro.load: a attributes.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "attr_mean_": ArraySpec("f", ("a",)),
        "attr_scale_": ArraySpec("f", ("a",)),
    }

    def __init__(
        self,
        graph: pd.DataFrame | None = None,
        alpha: float = 0.01,
        degree: int = 3,
        scm_alpha: float = 1e-3,
        latent_dim: int = 4,
        width: int = 16,
        hidden: int = 128,
        beta: float = 1.0,
        consistency: float = 0.0,
        max_iter: int = 40,
        batch_size: int = 64,
        lr: float = 2e-3,
        n_iter_no_change: int | None = 8,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool | int | str | None = 0,
    ) -> None:
        self.graph = graph
        self.alpha = alpha
        self.degree = degree
        self.scm_alpha = scm_alpha
        self.latent_dim = latent_dim
        self.width = width
        self.hidden = hidden
        self.beta = beta
        self.consistency = consistency
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.lr = lr
        self.n_iter_no_change = n_iter_no_change
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- input handling ----------------------------------------------------------------
    def _check_attributes(self, attributes: Any, n: int, fitting: bool) -> pd.DataFrame:
        if not isinstance(attributes, pd.DataFrame):
            raise TypeError(f"attributes must be a pandas DataFrame, got {type(attributes).__name__}")
        if len(attributes) != n:
            raise ValueError(f"attributes has {len(attributes)} rows but images has {n} images")
        if not fitting:
            missing = [c for c in self.attribute_names_ if c not in attributes.columns]
            if missing:
                raise ValueError(f"attributes lacks column(s) {missing} seen in fit")
            attributes = attributes[self.attribute_names_]
        if attributes.shape[1] < 1:
            raise ValueError("attributes must have at least one column")
        try:
            A = attributes.to_numpy(dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError("attributes must contain only numeric or boolean columns") from err
        if not np.all(np.isfinite(A)):
            raise ValueError("attributes contains NaN or infinite values")
        return A

    def _standardize(self, A: np.ndarray) -> np.ndarray:
        return (A - self.attr_mean_) / self.attr_scale_

    def _unstandardize(self, S: np.ndarray) -> np.ndarray:
        return S * self.attr_scale_ + self.attr_mean_

    def _check_graph(self, names: list[str]) -> np.ndarray:
        g = self.graph
        if not isinstance(g, pd.DataFrame):
            raise TypeError(f"graph must be a pandas DataFrame or None, got {type(g).__name__}")
        if sorted(map(str, g.index)) != sorted(names) or sorted(map(str, g.columns)) != sorted(names):
            raise ValueError(f"graph must have the attributes {names} as both index and columns")
        g = g.copy()
        g.index, g.columns = g.index.map(str), g.columns.map(str)
        adj = g.loc[names, names].to_numpy(dtype=float)
        if not np.all(np.isfinite(adj)):
            raise ValueError("graph contains NaN or infinite values")
        adj = (adj != 0).astype(float)
        np.fill_diagonal(adj, 0)
        try:
            _scm.topological_order(adj)
        except ValueError as err:
            raise ValueError("graph must be acyclic (a DAG)") from err
        return adj

    # -- fit ----------------------------------------------------------------------------
    def fit(self, images: Any, attributes: pd.DataFrame) -> "CausalImageModel":
        """Learn the attribute SCM (and graph if needed) and the conditional image model.

        Parameters
        ----------
        images : array, shape (n, H, W) or (n, H, W, C)
            Floats in [0, 1].
        attributes : DataFrame, shape (n, n_attributes)
            Continuous or binary (0/1) labels of each image.

        Returns
        -------
        self : CausalImageModel
        """
        import torch

        from crl_neuro.core.training import fit_torch, resolve_device, torch_seed
        from crl_neuro.generative._module import build_module

        X = _check_images(images)
        A = self._check_attributes(attributes, len(X), fitting=True)
        n = len(X)
        if n < 10:
            raise ValueError(f"images must contain at least 10 images to fit, got {n}")
        check_float(self.alpha, "alpha", min_value=0.0, max_value=1.0, inclusive=False)
        degree = check_int(self.degree, "degree", min_value=1, max_value=5)
        check_float(self.scm_alpha, "scm_alpha", min_value=0.0)
        check_int(self.latent_dim, "latent_dim", min_value=1)
        check_int(self.width, "width", min_value=1)
        check_int(self.hidden, "hidden", min_value=1)
        check_float(self.beta, "beta", min_value=0.0)
        check_float(self.consistency, "consistency", min_value=0.0)
        max_iter = check_int(self.max_iter, "max_iter", min_value=1)
        batch_size = check_int(self.batch_size, "batch_size", min_value=2)
        check_float(self.lr, "lr", min_value=0.0, inclusive=False)
        if self.n_iter_no_change is not None:
            check_int(self.n_iter_no_change, "n_iter_no_change", min_value=1)
        dev = resolve_device(self.device)
        seed = torch_seed(self.random_state)

        names = [str(c) for c in attributes.columns]
        if len(set(names)) != len(names):
            raise ValueError("attributes has duplicate column names")
        binary = [bool(np.all(np.isin(A[:, j], (0.0, 1.0)))) for j in range(A.shape[1])]
        const = [names[j] for j in range(A.shape[1]) if np.ptp(A[:, j]) == 0]
        if const:
            raise ValueError(f"attributes has constant column(s) {const}")
        self.attribute_names_ = names
        self.binary_ = binary
        # binary attributes are coded -1/+1 internally, continuous ones standardized
        mean = np.where(binary, 0.5, A.mean(axis=0))
        scale = np.where(binary, 0.5, A.std(axis=0))
        self.attr_mean_, self.attr_scale_ = mean, scale
        S = self._standardize(A)
        self._fit_scm(S, degree, seed)

        self.image_shape_ = tuple(int(s) for s in X.shape[1:])
        self.config_ = {
            "channels": 1 if X.ndim == 3 else int(X.shape[3]),
            "height": int(X.shape[1]), "width": int(X.shape[2]),
            "n_attributes": len(names), "latent_dim": int(self.latent_dim),
            "width_conv": int(self.width), "hidden": int(self.hidden),
            "beta": float(self.beta), "consistency": float(self.consistency), "binary": binary,
        }
        Xt = self._to_nchw(X)
        old_threads = torch.get_num_threads()
        if dev.type == "cpu":
            torch.set_num_threads(1)  # small networks: threads cost more than they give
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                module = build_module(self.config_)
            hist = fit_torch(
                module, lambda m, b: m.loss(b[0], b[1]), (Xt, S.astype(np.float32)),
                max_iter=max_iter, batch_size=min(batch_size, n), lr=self.lr,
                validation_fraction=0.1, patience=self.n_iter_no_change, device=dev,
                verbose=logger_verbosity(), random_state=seed, clip_grad_norm=100.0,
            )
        finally:
            torch.set_num_threads(old_threads)
        self.module_ = module.cpu().eval()
        self.history_ = hist.to_dict()
        self.n_iter_ = int(hist.n_epochs)
        return self

    def _fit_scm(self, S: np.ndarray, degree: int, seed: int) -> None:
        """Graph (given or PC) and attribute mechanisms on standardized attributes ``S``."""
        from crl_neuro.core.discovery import pc

        names = self.attribute_names_
        if self.graph is None:
            self.pc_graph_ = pc(S, alpha=self.alpha, indep_test="fisherz", names=names) if len(names) > 1 else None
            adj = _scm.orient_to_dag(self.pc_graph_.to_adjacency()) if self.pc_graph_ is not None else np.zeros((1, 1))
        else:
            self.pc_graph_ = None
            adj = self._check_graph(names)
        self.graph_ = pd.DataFrame(adj.astype(int), index=names, columns=names)
        self.order_ = [int(i) for i in _scm.topological_order(adj)]
        self.mechanisms_ = _scm.fit_mechanisms(S, adj, self.binary_, degree, float(self.scm_alpha))
        rng = np.random.default_rng(seed)
        self.noise_ = pd.DataFrame(_scm.abduct(self.mechanisms_, S, rng), columns=names)

    def with_graph(self, attributes: pd.DataFrame, graph: pd.DataFrame | None) -> "CausalImageModel":
        """A copy whose attribute SCM is refit under another graph; the image networks are kept.

        The conditional VAE does not depend on the graph (only the attribute layer
        does), so this equals refitting with ``graph`` and the same ``random_state``,
        without retraining the networks: use it to correct an edge found by PC, or to
        compare edits with and without the causal graph.

        Parameters
        ----------
        attributes : DataFrame
            Attributes to fit the mechanisms on (normally the training attributes),
            columns as in ``fit``.
        graph : DataFrame | None
            Attributes x attributes adjacency as for the ``graph`` parameter (``None``
            learns it with PC).

        Returns
        -------
        model : CausalImageModel
            A new fitted model; ``self`` is unchanged.
        """
        import copy

        check_is_fitted(self, "module_")
        A = self._check_attributes(attributes, len(attributes), fitting=False)
        for j, b in enumerate(self.binary_):
            if b and not np.all(np.isin(A[:, j], (0.0, 1.0))):
                raise ValueError(f"attributes column {self.attribute_names_[j]!r} must be 0/1 as in fit")
        degree = check_int(self.degree, "degree", min_value=1, max_value=5)
        new = copy.deepcopy(self)
        new.graph = None if graph is None else graph.copy()
        new._fit_scm(new._standardize(A), degree, new._seed(None))
        return new

    def _params_to_json(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        # A ``graph`` DataFrame parameter is stored as a JSON dict (undone on load).
        params, files = super()._params_to_json()
        graph = params.get("graph")
        if isinstance(graph, pd.DataFrame):
            params["graph"] = {
                "__graph_frame__": True, "index": [str(i) for i in graph.index],
                "columns": [str(c) for c in graph.columns],
                "data": graph.to_numpy(dtype=float).tolist(),
            }
        return params, files

    @classmethod
    def _params_from_json(cls, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        g = params.get("graph")
        if isinstance(g, dict) and g.get("__graph_frame__"):
            params["graph"] = pd.DataFrame(g["data"], index=g["index"], columns=g["columns"])
        return params

    def _build_modules(self, meta: dict[str, Any]) -> dict[str, Any]:
        from crl_neuro.generative._module import build_module

        config = self.config_
        return {"module_": build_module(config)}

    # -- helpers ------------------------------------------------------------------------
    def _to_nchw(self, X: np.ndarray) -> np.ndarray:
        X = X[:, None] if X.ndim == 3 else np.moveaxis(X, 3, 1)
        return np.ascontiguousarray(X, dtype=np.float32)

    def _from_nchw(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0] if len(self.image_shape_) == 2 else np.moveaxis(X, 1, 3)

    def _run(self, fn: Any, *arrays: np.ndarray, batch: int = 512) -> np.ndarray:
        import torch

        outs = []
        with torch.no_grad():
            for start in range(0, len(arrays[0]), batch):
                ts = [torch.as_tensor(a[start:start + batch], dtype=torch.float32) for a in arrays]
                outs.append(fn(*ts).numpy())
        return np.concatenate(outs).astype(np.float64)

    def _check_do(self, do: Any, n: int) -> dict[int, np.ndarray]:
        if not isinstance(do, Mapping) or len(do) == 0:
            raise TypeError("do must be a non-empty dict {attribute name: value(s)}")
        out = {}
        for name, value in do.items():
            if name not in self.attribute_names_:
                raise ValueError(f"do has unknown attribute {name!r}; expected one of {self.attribute_names_}")
            v = np.asarray(value, dtype=float)
            if v.ndim == 0:
                v = np.full(n, float(v))
            elif v.shape != (n,):
                raise ValueError(f"do[{name!r}] must be a scalar or an array of length {n}, got shape {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ValueError(f"do[{name!r}] contains NaN or infinite values")
            j = self.attribute_names_.index(name)
            if self.binary_[j] and not np.all(np.isin(v, (0.0, 1.0))):
                raise ValueError(f"do[{name!r}] must be 0 or 1 (binary attribute)")
            out[j] = (v - self.attr_mean_[j]) / self.attr_scale_[j]
        return out

    def _abduct(self, images: Any, attributes: Any, rng: np.random.Generator):
        check_is_fitted(self, "module_")
        X = _check_images(images, shape=self.image_shape_)
        A = self._check_attributes(attributes, len(X), fitting=False)
        S = self._standardize(A)
        Xt = self._to_nchw(X)
        u = self._run(lambda x, a: self.module_.encode(x, a)[0], Xt, S.astype(np.float32))
        return X, S, _scm.abduct(self.mechanisms_, S, rng), u

    def _decode(self, S: np.ndarray, u: np.ndarray) -> np.ndarray:
        out = self._run(self.module_.decode, S.astype(np.float32), u.astype(np.float32))
        return self._from_nchw(out)

    def _edit(self, images, attributes, do, resample: bool, random_state, return_attributes):
        rng = np.random.default_rng(self._seed(random_state))
        X, S, E, u = self._abduct(images, attributes, rng)
        do_idx = self._check_do(do, len(X))
        if resample:
            desc = set().union(*(_scm.descendants(self.graph_.to_numpy(), j) for j in do_idx)) - set(do_idx)
            for j in desc:
                E[:, j] = rng.choice(self.noise_.iloc[:, j].to_numpy(), size=len(X))
        S_new = _scm.predict(self.mechanisms_, E, self.order_, do_idx)
        # attributes that are neither targets nor descendants keep their observed values
        changed = set(do_idx).union(*(_scm.descendants(self.graph_.to_numpy(), j) for j in do_idx))
        for j in range(S.shape[1]):
            if j not in changed:
                S_new[:, j] = S[:, j]
        imgs = self._decode(S_new, u).astype(X.dtype)
        if return_attributes:
            return imgs, self._to_frame(S_new, attributes.index)
        return imgs

    def _seed(self, random_state: Any) -> Any:
        from crl_neuro.core.training import torch_seed

        return torch_seed(self.random_state if random_state is None else random_state)

    def _to_frame(self, S: np.ndarray, index: Any = None) -> pd.DataFrame:
        A = self._unstandardize(S)
        for j, b in enumerate(self.binary_):
            if b:
                A[:, j] = (A[:, j] > 0.5).astype(float)
        return pd.DataFrame(A, columns=self.attribute_names_, index=index)

    # -- public use -----------------------------------------------------------------------
    def counterfactual(
        self, images: Any, attributes: pd.DataFrame, do: Mapping[str, Any],
        return_attributes: bool = False,
    ) -> Any:
        """Counterfactual edit: abduct all exogenous noise, set ``do``, predict.

        Descendants of the ``do`` targets are recomputed with their *abducted* noise;
        everything else (non-descendant attributes, image latent ``u``) is kept.

        Parameters
        ----------
        images : array, shape (n, H, W) or (n, H, W, C)
            Images in [0, 1], same image shape as in ``fit``.
        attributes : DataFrame
            Their attributes (columns as in ``fit``).
        do : dict
            ``{attribute: value}``; value a scalar or an array of length n.
        return_attributes : bool
            Also return the counterfactual attributes.

        Returns
        -------
        images : array, same shape as ``images``
        attributes : DataFrame
            Only with ``return_attributes=True``.
        """
        return self._edit(images, attributes, do, False, None, return_attributes)

    def intervene(
        self, images: Any, attributes: pd.DataFrame, do: Mapping[str, Any],
        random_state: Any = None, return_attributes: bool = False,
    ) -> Any:
        """Interventional edit: like :meth:`counterfactual`, but the exogenous noise of
        the descendants of the ``do`` targets is resampled from the training residuals.

        Parameters
        ----------
        images, attributes, do, return_attributes
            See :meth:`counterfactual`.
        random_state : None | int
            Seeds the resampling (default: the estimator's ``random_state``).

        Returns
        -------
        images : array, same shape as ``images``
        attributes : DataFrame
            Only with ``return_attributes=True``.
        """
        return self._edit(images, attributes, do, True, random_state, return_attributes)

    def generate(
        self, n: int, do: Mapping[str, Any] | None = None, random_state: Any = None
    ) -> tuple[np.ndarray, pd.DataFrame]:
        """Sample new images from the model, optionally under an intervention.

        Parameters
        ----------
        n : int
            Number of images.
        do : dict | None
            ``{attribute: value}`` intervention.
        random_state : None | int
            Seeds the sampling (default: the estimator's ``random_state``).

        Returns
        -------
        images : array, shape ``(n, *image_shape_)``
        attributes : DataFrame, shape (n, n_attributes)
        """
        check_is_fitted(self, "module_")
        n = check_int(n, "n", min_value=1)
        rng = np.random.default_rng(self._seed(random_state))
        do_idx = {} if do is None else self._check_do(do, n)
        rows = rng.integers(0, len(self.noise_), size=(n, len(self.attribute_names_)))
        noise = self.noise_.to_numpy()
        E = noise[rows, np.arange(noise.shape[1])]  # independent draws per attribute
        S = _scm.predict(self.mechanisms_, E, self.order_, do_idx)
        u = rng.standard_normal((n, self.config_["latent_dim"]))
        return self._decode(S, u).astype(np.float32), self._to_frame(S)

    def predict_attributes(self, images: Any) -> pd.DataFrame:
        """Predict the attributes of images with the fitted attribute head.

        Parameters
        ----------
        images : array, shape (n, H, W) or (n, H, W, C)

        Returns
        -------
        attributes : DataFrame, shape (n, n_attributes)
            Continuous attributes on their original scale; binary ones as 0/1.
        """
        check_is_fitted(self, "module_")
        X = _check_images(images, shape=self.image_shape_)
        S = self._run(self.module_.predict, self._to_nchw(X))
        for j, b in enumerate(self.binary_):
            if b:
                S[:, j] = np.where(S[:, j] > 0, 1.0, -1.0)
        return self._to_frame(S)

    def reconstruct(self, images: Any, attributes: pd.DataFrame) -> np.ndarray:
        """Encode and decode images with their own attributes (the null edit).

        Parameters
        ----------
        images : array, shape (n, H, W) or (n, H, W, C)
            Images in [0, 1].
        attributes : DataFrame
            Their attributes (columns as in ``fit``).

        Returns
        -------
        images : array of float32, same shape as ``images``
        """
        rng = np.random.default_rng(0)
        X, S, _, u = self._abduct(images, attributes, rng)
        return self._decode(S, u).astype(X.dtype)

    def plot_edits(
        self, images: Any, attributes: pd.DataFrame, do: Mapping[str, Any], n_images: int = 4,
        random_state: Any = None,
    ) -> Any:
        """Grid of originals, interventions and counterfactual edits.

        Parameters
        ----------
        images, attributes
            Images to edit (the first ``n_images`` are shown).
        do : dict
            One or more interventions ``{attribute: scalar}``; one column pair per entry.
        n_images : int
            Number of rows.
        random_state : None | int
            Seeds the interventions' resampling.

        Returns
        -------
        fig : matplotlib.figure.Figure
        """
        import matplotlib.pyplot as plt

        check_is_fitted(self, "module_")
        n_images = check_int(n_images, "n_images", min_value=1)
        X = _check_images(images, shape=self.image_shape_)[:n_images]
        A = attributes.iloc[:n_images]
        if not isinstance(do, Mapping) or not do:
            raise TypeError("do must be a non-empty dict {attribute: value}")
        cols = [("original", X)]
        for name, value in do.items():
            cols.append((f"do({name}={value:.3g})\nintervene", self.intervene(X, A, {name: value}, random_state)))
            cols.append((f"do({name}={value:.3g})\ncounterfactual", self.counterfactual(X, A, {name: value})))
        fig, axes = plt.subplots(len(X), len(cols), figsize=(1.6 * len(cols), 1.6 * len(X)), squeeze=False)
        for c, (title, imgs) in enumerate(cols):
            for r in range(len(X)):
                ax = axes[r, c]
                ax.imshow(imgs[r], cmap="gray" if imgs.ndim == 3 else None, vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(title, fontsize=7)
        fig.tight_layout()
        return fig
