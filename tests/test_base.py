"""Tests of crl_neuro.core.base (estimator contract, persistence) and core.validation."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.core.base import BaseCRLEstimator, check_is_fitted
from crl_neuro.core.graphs import Graph
from crl_neuro.core.training import torch_seed
from crl_neuro.core.validation import (
    check_choice,
    check_data,
    check_domains,
    check_float,
    check_int,
    check_n_latents,
    check_square,
)

_EXECUTED = []


def _mark_executed():  # called only if a pickle in a file were ever unpickled
    _EXECUTED.append(True)
    return 0


class _Payload:
    def __reduce__(self):
        return (_mark_executed, ())


class TinyEstimator(BaseCRLEstimator):
    """A linear projection + a torch head; fitted attributes of every supported type."""

    def __init__(self, n_components=2, n_hidden=4, alpha=0.5, tags=("a", "b"), random_state=None):
        self.n_components = n_components
        self.n_hidden = n_hidden
        self.alpha = alpha
        self.tags = tags
        self.random_state = random_state

    def fit(self, X, domains=None):
        X = check_data(X, name="X")
        rng = np.random.default_rng(self.random_state)
        self.components_ = rng.normal(size=(X.shape[1], self.n_components))
        self.mean_ = X.mean(axis=0)
        self.table_ = pd.DataFrame(
            self.components_, columns=[f"c{k}" for k in range(self.n_components)],
            index=[f"f{k}" for k in range(X.shape[1])],
        )
        adj = np.zeros((self.n_components, self.n_components))
        if self.n_components > 1:
            adj[0, 1] = 0.7
        self.graph_ = Graph.from_adjacency(adj, names=[f"z{k}" for k in range(self.n_components)])
        with torch.random.fork_rng():
            torch.manual_seed(torch_seed(self.random_state))
            self.head_ = self._build_modules({})["head_"]
        self.n_iter_ = 3
        self.info_ = {"converged": True, "losses": [1.0, 0.5]}
        self.per_domain_ = [np.arange(3.0), np.ones((2, 2))]
        return self

    def transform(self, X):
        check_is_fitted(self)
        Z = (check_data(X, name="X") - self.mean_) @ self.components_
        with torch.no_grad():
            return self.head_(torch.as_tensor(Z, dtype=torch.float32)).numpy()

    def _build_modules(self, meta):
        return {
            "head_": torch.nn.Sequential(
                torch.nn.Linear(self.n_components, self.n_hidden), torch.nn.Tanh(),
                torch.nn.Linear(self.n_hidden, self.n_components),
            )
        }


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(30, 5))


def test_get_set_params_and_clone(X):
    est = TinyEstimator(n_components=3, alpha=0.1, random_state=1)
    assert est.get_params() == {"n_components": 3, "n_hidden": 4, "alpha": 0.1, "tags": ("a", "b"), "random_state": 1}
    est.set_params(alpha=0.2)
    assert est.alpha == 0.2
    est.fit(X)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not hasattr(c, "components_")


def test_not_fitted_error(X):
    with pytest.raises(NotFittedError, match="TinyEstimator"):
        TinyEstimator().transform(X)
    with pytest.raises(NotFittedError):
        check_is_fitted(TinyEstimator().fit(X), ["missing_"])
    check_is_fitted(TinyEstimator().fit(X), "components_")


def test_save_load_roundtrip_identical(X, tmp_path):
    est = TinyEstimator(n_components=3, random_state=2).fit(X)
    path = est.save(tmp_path / "tiny.crl")
    loaded = crl_neuro.load(path)
    assert type(loaded) is TinyEstimator
    assert loaded.get_params() == est.get_params()
    assert isinstance(loaded.tags, tuple)
    np.testing.assert_array_equal(loaded.transform(X), est.transform(X))
    np.testing.assert_array_equal(loaded.components_, est.components_)
    pd.testing.assert_frame_equal(loaded.table_, est.table_)
    assert loaded.graph_ == est.graph_
    assert loaded.n_iter_ == 3 and loaded.info_ == est.info_
    assert all(np.array_equal(a, b) for a, b in zip(loaded.per_domain_, est.per_domain_))
    with pytest.raises(FileExistsError, match="overwrite"):
        est.save(path)
    est.save(path, overwrite=True)


def test_save_refuses_unsaveable_params(X, tmp_path):
    est = TinyEstimator(random_state=np.random.RandomState(0)).fit(X)
    with pytest.raises(TypeError, match="random_state"):
        est.save(tmp_path / "x.crl")


def _write_archive(path, meta, arrays=None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.json", json.dumps(meta))
        buf = io.BytesIO()
        np.savez(buf, **(arrays or {}))
        zf.writestr("arrays.npz", buf.getvalue())


def _meta(cls="tests.test_base.TinyEstimator", fitted=None):
    return {
        "format_version": 1,
        "class": cls,
        "crl_neuro_version": crl_neuro.__version__,
        "params": {},
        "fitted": fitted or {},
    }


def test_load_refuses_unregistered_class(tmp_path):
    for cls in ("os.system", "builtins.eval", "crl_neuro.core.nope.Missing"):
        path = tmp_path / "bad.crl"
        _write_archive(path, _meta(cls=cls))
        with pytest.raises(ValueError, match="not a crl_neuro estimator"):
            crl_neuro.load(path)


def test_load_refuses_non_zip_and_missing_files(tmp_path):
    p = tmp_path / "plain.crl"
    p.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match="not a crl_neuro estimator file"):
        crl_neuro.load(p)
    with pytest.raises(FileNotFoundError):
        crl_neuro.load(tmp_path / "absent.crl")
    q = tmp_path / "nometa.crl"
    with zipfile.ZipFile(q, "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(ValueError, match="meta.json"):
        crl_neuro.load(q)


def test_load_refuses_pickled_object_arrays(tmp_path, X):
    key = TinyEstimator.__module__ + ".TinyEstimator"
    path = tmp_path / "pickle.crl"
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload()
    _write_archive(path, _meta(cls=key, fitted={"components_": {"__kind__": "array", "key": "a0"}}),
                   arrays={"a0": payload})
    with pytest.raises(ValueError, match="[Oo]bject arrays|allow_pickle"):
        crl_neuro.load(path)
    assert _EXECUTED == []
    # and saving refuses object arrays in the first place
    est = TinyEstimator().fit(X)
    est.bad_ = payload
    with pytest.raises(TypeError, match="object arrays"):
        est.save(tmp_path / "obj.crl")


def test_load_refuses_other_format_version(tmp_path, X):
    path = TinyEstimator().fit(X).save(tmp_path / "v.crl")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        arrays = zf.read("arrays.npz")
        modules = {n: zf.read(n) for n in zf.namelist() if n.startswith("modules/")}
    meta["format_version"] = 999
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("meta.json", json.dumps(meta))
        zf.writestr("arrays.npz", arrays)
        for n, b in modules.items():
            zf.writestr(n, b)
    with pytest.raises(ValueError, match="format version"):
        crl_neuro.load(path)


# -- validation helpers -------------------------------------------------------------------
def test_check_data_messages_name_argument():
    A = np.arange(12.0).reshape(6, 2)
    out = check_data(A, name="inst")
    assert out is not A and out.dtype == np.float64
    with pytest.raises(TypeError, match="inst"):
        check_data(None, name="inst")
    with pytest.raises(TypeError, match="inst"):
        check_data(np.array([["a", "b"]]), name="inst")
    with pytest.raises(ValueError, match="inst must be 2D"):
        check_data(A.ravel(), name="inst")
    with pytest.raises(ValueError, match="inst needs at least 10 samples"):
        check_data(A, name="inst", min_samples=10)
    with pytest.raises(ValueError, match="inst needs at least 3 features"):
        check_data(A, name="inst", min_features=3)
    bad = A.copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="inst contains 1 NaN"):
        check_data(bad, name="inst")
    assert np.isinf(bad[0, 0])  # caller's array untouched


def test_check_domains():
    labels, codes = check_domains(["b", "a", "b", "a"], 4, name="sessions")
    assert list(labels) == ["a", "b"] and list(codes) == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="sessions must contain at least 2"):
        check_domains([1, 1, 1], 3, name="sessions")
    with pytest.raises(ValueError, match="sessions has 2 labels"):
        check_domains([1, 2], 3, name="sessions")
    with pytest.raises(ValueError, match="sessions must be 1D"):
        check_domains(np.zeros((2, 2)), 2, name="sessions")
    with pytest.raises(TypeError, match="sessions"):
        check_domains(None, 2, name="sessions")
    with pytest.raises(ValueError, match="sessions: domain"):
        check_domains([0, 0, 1], 3, name="sessions")


def test_scalar_checks():
    assert check_int(np.int64(3), "n") == 3
    with pytest.raises(TypeError, match="n_sources must be an int"):
        check_int(2.5, "n_sources")
    with pytest.raises(TypeError, match="n_sources"):
        check_int(True, "n_sources")
    with pytest.raises(ValueError, match="n_sources must be >= 1"):
        check_int(0, "n_sources", min_value=1)
    assert check_float(1, "alpha") == 1.0
    with pytest.raises(ValueError, match="alpha must be < 1"):
        check_float(1.0, "alpha", max_value=1, inclusive=False)
    with pytest.raises(ValueError, match="alpha must be finite"):
        check_float(np.nan, "alpha")
    with pytest.raises(TypeError, match="alpha"):
        check_float("0.1", "alpha")
    assert check_choice("linear", "mixing", ["linear", "nonlinear"]) == "linear"
    with pytest.raises(ValueError, match="mixing must be one of"):
        check_choice("quadratic", "mixing", ["linear", "nonlinear"])


def test_check_n_latents_and_square():
    X = np.random.default_rng(0).normal(size=(20, 3))
    assert check_n_latents(2, X) == 2
    with pytest.raises(ValueError, match="n_latents=4 exceeds the rank"):
        check_n_latents(4, X)
    with pytest.raises(ValueError, match="too few samples"):
        check_n_latents(3, X[:3], rank=3)
    with pytest.raises(ValueError, match="adj must be a square matrix"):
        check_square(np.zeros((2, 3)), "adj")
    with pytest.raises(ValueError, match=r"adj must have shape \(3, 3\)"):
        check_square(np.zeros((2, 2)), "adj", n=3)


def test_dataframe_roundtrip_is_bit_exact(X, tmp_path):
    est = TinyEstimator(n_components=3, random_state=2).fit(X)
    est.timing_ = pd.DataFrame({"time": [1.5e9, 2.0e9], "x": [0.1, 1 / 3]})
    loaded = crl_neuro.load(est.save(tmp_path / "df.crl"))
    pd.testing.assert_frame_equal(loaded.table_, est.table_, check_exact=True)
    pd.testing.assert_frame_equal(loaded.timing_, est.timing_, check_exact=True)
