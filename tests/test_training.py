"""Tests of crl_neuro.core.training."""

import numpy as np
import pytest
import torch

from crl_neuro.core.training import (
    TrainingHistory,
    fit_torch,
    make_generator,
    resolve_device,
    seed_everything,
    to_tensor,
    torch_seed,
)


def _regression(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)).astype(np.float32)
    w = np.array([1.5, -2.0, 0.5], dtype=np.float32)
    y = X @ w + 0.1 * rng.normal(size=n).astype(np.float32)
    return X, y[:, None], w


def _mse(model, batch):
    x, y = batch
    return torch.mean((model(x) - y) ** 2)


def _model(seed):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Dropout(0.1), torch.nn.Linear(8, 1))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(torch.device("cpu")).type == "cpu"
    with pytest.raises(ValueError, match="device"):
        resolve_device("tpu-ish")
    with pytest.raises(TypeError, match="device"):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seeds_and_generators():
    assert torch_seed(5) == 5
    assert torch_seed(np.random.RandomState(0)) == torch_seed(np.random.RandomState(0))
    assert isinstance(torch_seed(None), int)
    with pytest.raises(TypeError, match="random_state"):
        torch_seed("seed")
    with pytest.raises(ValueError, match="random_state"):
        torch_seed(-1)
    g1, g2 = make_generator(3), make_generator(3)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    seed_everything(7)
    a = (torch.rand(2), np.random.rand())
    seed_everything(7)
    b = (torch.rand(2), np.random.rand())
    assert torch.equal(a[0], b[0]) and a[1] == b[1]
    t = to_tensor(np.arange(3.0))
    assert t.dtype == torch.float32


def test_fit_torch_decreases_loss_and_learns_weights():
    X, y, w = _regression()
    model = torch.nn.Linear(3, 1)
    hist = fit_torch(model, _mse, (X, y), max_iter=300, lr=0.05, batch_size=64, patience=20, random_state=0)
    assert isinstance(hist, TrainingHistory)
    assert hist.train_loss[-1] < 0.1 * hist.train_loss[0]
    assert hist.val_loss and hist.best_loss < 0.03  # noise variance 0.01
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), w, atol=0.05)
    assert not model.training
    d = hist.to_dict()
    assert d["n_epochs"] == hist.n_epochs and d["device"] == "cpu"


def test_fit_torch_reproducible_with_seed_and_no_global_side_effect():
    X, y, _ = _regression()
    kw = dict(max_iter=15, lr=0.01, batch_size=32, patience=None)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    m1 = _model(0)
    h1 = fit_torch(m1, _mse, (X, y), random_state=4, **kw)
    after = torch.rand(1)
    assert torch.equal(before, after)  # global torch RNG untouched by training
    m2 = _model(0)
    h2 = fit_torch(m2, _mse, (X, y), random_state=4, **kw)
    assert h1.train_loss == h2.train_loss and h1.val_loss == h2.val_loss
    for p, q in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(p, q)
    m3 = _model(0)
    h3 = fit_torch(m3, _mse, (X, y), random_state=5, **kw)
    assert h3.train_loss != h1.train_loss


def test_early_stopping_triggers_and_restores_best():
    X, _, _ = _regression(n=80)
    rng = np.random.default_rng(1)
    y_noise = rng.normal(size=(80, 1)).astype(np.float32)  # unlearnable: overfits quickly
    X_val = rng.normal(size=(40, 3)).astype(np.float32)
    y_val = rng.normal(size=(40, 1)).astype(np.float32)
    model = torch.nn.Sequential(torch.nn.Linear(3, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    hist = fit_torch(model, _mse, (X, y_noise), validation_data=(X_val, y_val), max_iter=500,
                     lr=0.01, batch_size=None, patience=5, random_state=0)
    assert hist.stopped_early and hist.n_epochs < 500
    assert hist.n_epochs == hist.best_epoch + 1 + 5
    assert min(hist.val_loss) == pytest.approx(hist.best_loss)
    # the model holds the weights of the best epoch, not of the last one
    with torch.no_grad():
        final_val = float(_mse(model, (torch.as_tensor(X_val), torch.as_tensor(y_val))))
    assert final_val == pytest.approx(hist.best_loss, rel=1e-5)
    assert hist.val_loss[-1] > hist.best_loss


def test_fit_torch_callback_dataloader_and_errors():
    X, y, _ = _regression(n=100)
    seen = []

    def cb(epoch, history, model):
        seen.append(epoch)
        return epoch == 2

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.as_tensor(X), torch.as_tensor(y)), batch_size=20
    )
    hist = fit_torch(torch.nn.Linear(3, 1), _mse, loader, max_iter=50, callback=cb, random_state=0)
    assert seen == [0, 1, 2] and hist.n_epochs == 3 and hist.val_loss == []
    with pytest.raises(TypeError, match="model"):
        fit_torch(lambda x: x, _mse, (X, y))
    with pytest.raises(ValueError, match="max_iter"):
        fit_torch(torch.nn.Linear(3, 1), _mse, (X, y), max_iter=0)
    with pytest.raises(ValueError, match="same number of samples"):
        fit_torch(torch.nn.Linear(3, 1), _mse, (X, y[:50]))
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_torch(torch.nn.Linear(3, 1), _mse, (bad, y))
    with pytest.raises(TypeError, match="scalar"):
        fit_torch(torch.nn.Linear(3, 1), lambda m, b: m(b[0]), (X, y), max_iter=1)


def test_verbose_progress_bar(capsys):
    X, y, _ = _regression(n=50)
    fit_torch(torch.nn.Linear(3, 1), _mse, (X, y), max_iter=3, verbose=1, random_state=0)
    err = capsys.readouterr().err
    assert "training" in err


def test_fit_torch_param_groups_and_epoch_hook():
    """Groups keep their own options, the hook schedules lr and a loss weight per epoch."""
    X, y, _ = _regression(n=200)
    model = torch.nn.Linear(3, 1)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    state = {"lam": None}
    seen_lam, weights = [], []

    def hook(epoch, optimizer):
        # weights frozen (lr 0) for 3 epochs, then trained; the bias group keeps lr 0
        optimizer.param_groups[0]["lr"] = 0.0 if epoch < 3 else 0.05
        state["lam"] = 0.1 * epoch
        return {"lr0": optimizer.param_groups[0]["lr"], "lam": state["lam"]}

    def loss(m, batch):
        seen_lam.append(state["lam"])
        return _mse(m, batch) + state["lam"] * 0.0 * m.weight.sum()

    def cb(epoch, history, m):
        weights.append(m.weight.detach().clone())
        history.extra.setdefault("cb", []).append(epoch)

    groups = [{"params": [model.weight]}, {"params": model.bias, "lr": 0.0, "weight_decay": 0.0}]
    hist = fit_torch(model, loss, (X, y), parameters=groups, epoch_hook=hook, callback=cb,
                     max_iter=8, batch_size=50, patience=None, clip_grad_norm=1.0,
                     optimizer="adamw", weight_decay=0.01, random_state=0)
    assert hist.extra["lr0"] == [0.0] * 3 + [0.05] * 5
    assert hist.extra["lam"] == pytest.approx([0.1 * e for e in range(8)])
    assert hist.extra["cb"] == list(range(8))
    assert hist.to_dict()["extra"]["lr0"] == hist.extra["lr0"]
    # the loss saw the hook's value of its epoch (train batches, then validation)
    assert seen_lam[0] == 0.0 and seen_lam[-1] == pytest.approx(0.7)
    assert torch.equal(weights[2], w0) and not torch.equal(weights[3], w0)
    assert torch.equal(model.bias.detach(), b0)  # lr 0 (and no decay) in its group
    with pytest.raises(TypeError, match="mix"):
        fit_torch(model, _mse, (X, y), parameters=[model.weight, {"params": [model.bias]}])
    with pytest.raises(ValueError, match="params"):
        fit_torch(model, _mse, (X, y), parameters=[{"lr": 0.1}])
    with pytest.raises(TypeError, match="epoch_hook"):
        fit_torch(model, _mse, (X, y), epoch_hook=3)


def test_fit_torch_early_stopping_start_and_abs_tol():
    X, y, _ = _regression(n=200)
    kw = dict(max_iter=60, lr=0.02, batch_size=50, random_state=0)

    def scheduled(m, batch):  # an objective that grows with the epoch's penalty weight
        return _mse(m, batch) + state["lam"]

    state = {"lam": 0.0}

    def hook(epoch, optimizer):
        state["lam"] = 5.0 * min(epoch, 10)
        return None

    h0 = fit_torch(torch.nn.Linear(3, 1), scheduled, (X, y), epoch_hook=hook, patience=3, **kw)
    assert h0.best_epoch == 0 and h0.stopped_early and h0.n_epochs == 4  # the schedule fooled it
    h1 = fit_torch(torch.nn.Linear(3, 1), scheduled, (X, y), epoch_hook=hook, patience=3,
                   early_stopping_start=10, tol=0.0, **kw)
    assert h1.best_epoch >= 10 and h1.n_epochs > 14
    assert h1.best_loss == min(h1.val_loss[10:]) and h1.extra == {}
    if h1.stopped_early:
        assert h1.n_epochs == h1.best_epoch + 1 + 3
    # training ends before early stopping starts: the last weights stay, no best epoch
    h2 = fit_torch(torch.nn.Linear(3, 1), _mse, (X, y), max_iter=3, early_stopping_start=5,
                   random_state=0)
    assert h2.best_epoch == -1 and not h2.stopped_early and h2.n_epochs == 3

    def tiny(m, batch):  # a loss of magnitude 1e-6: below the default absolute floor tol
        return 1e-6 * _mse(m, batch)

    h3 = fit_torch(torch.nn.Linear(3, 1), tiny, (X, y), patience=5, tol=1e-3, **kw)
    h4 = fit_torch(torch.nn.Linear(3, 1), tiny, (X, y), patience=5, tol=1e-3, abs_tol=0.0, **kw)
    assert h3.best_epoch == 0 and h3.n_epochs == 6
    assert h4.best_epoch > 10


def test_fit_torch_batches_split_and_rng_options():
    X, y, _ = _regression(n=103)
    sizes = []

    def loss(m, batch):
        sizes.append((m.training, batch[0].shape[0]))
        return _mse(m, batch)

    # min_batch_size skips the short last batch; validation_batch_size=None: one pass
    X_val, y_val = X[:60], y[:60]
    fit_torch(torch.nn.Linear(3, 1), loss, (X, y), validation_data=(X_val, y_val), max_iter=1,
              batch_size=51, min_batch_size=2, validation_batch_size=None,
              validation_fraction=None, random_state=0)
    assert sizes == [(True, 51), (True, 51), (False, 60)]
    sizes.clear()
    fit_torch(torch.nn.Linear(3, 1), loss, (X, y), validation_data=(X_val, y_val), max_iter=1,
              batch_size=51, random_state=0)
    assert sizes == [(True, 51), (True, 51), (True, 1), (False, 51), (False, 9)]
    # validation_fraction=None: no held-out samples, the training loss is monitored
    sizes.clear()
    h = fit_torch(torch.nn.Linear(3, 1), loss, (X, y), validation_fraction=None, max_iter=2,
                  batch_size=None, random_state=0)
    assert sizes == [(True, 103)] * 2 and h.val_loss == [] and h.best_loss == min(h.train_loss)

    # shuffle_generator: the caller's batch order (default: seeded from random_state)
    def run(**kw):
        m = _model(0)
        fit_torch(m, _mse, (X, y), max_iter=3, batch_size=16, patience=None, **kw)
        return torch.cat([p.detach().ravel() for p in m.parameters()])

    a = run(random_state=0, shuffle_generator=make_generator(7))
    b = run(random_state=0, shuffle_generator=make_generator(7))
    c = run(random_state=0)
    assert torch.equal(a, b) and not torch.equal(a, c)

    # fork_rng=False: training continues (and advances) the caller's torch stream
    torch.manual_seed(11)
    d = run(random_state=0, fork_rng=False)
    after_d = torch.rand(1)
    torch.manual_seed(11)
    e = run(random_state=0, fork_rng=False)
    torch.manual_seed(11)
    untouched = torch.rand(1)
    assert torch.equal(d, e) and not torch.equal(after_d, untouched)
    torch.manual_seed(11)
    run(random_state=0)  # default: forked, the caller's stream is untouched
    assert torch.equal(torch.rand(1), untouched)
    with pytest.raises(TypeError, match="shuffle_generator"):
        fit_torch(torch.nn.Linear(3, 1), _mse, (X, y), shuffle_generator=np.random.default_rng(0))


@pytest.mark.parametrize("fork", [True, False])
def test_fit_torch_pause_and_resume_equals_uninterrupted(fork):
    """A paused training continued with ``resume=`` ends where one run without a pause ends."""
    X, y, _ = _regression(n=300)

    def hook(epoch, optimizer):  # a schedule that depends on the epoch number
        for g in optimizer.param_groups:
            g["lr"] = 0.05 / (1 + epoch)
        return {"lr": optimizer.param_groups[0]["lr"]}

    kw = dict(max_iter=15, batch_size=40, patience=3, early_stopping_start=6, epoch_hook=hook,
              optimizer="adamw", weight_decay=0.01, random_state=7, fork_rng=fork)

    def run(pause):
        # dropout draws from torch's generator: the pause must keep its state
        torch.manual_seed(11)
        model = _model(2)
        if pause is None:
            return model, fit_torch(model, _mse, (X, y), **kw)
        h1 = fit_torch(model, _mse, (X, y), pause_after=pause, **kw)
        assert h1.paused and h1.n_epochs == pause and len(h1.train_loss) == pause
        # another training in between (changes torch's global generator when not forked)
        fit_torch(_model(3), _mse, (X, y), max_iter=2, random_state=1, fork_rng=fork)
        h2 = fit_torch(model, _mse, (X, y), resume=h1, **kw)
        assert h1.n_epochs == pause  # the paused history is left as it was
        return model, h2

    m_ref, h_ref = run(None)
    for pause in (4, 9):  # before and after early stopping starts
        m, h = run(pause)
        assert not h.paused and h.n_epochs == h_ref.n_epochs
        assert h.train_loss == h_ref.train_loss and h.val_loss == h_ref.val_loss
        assert h.extra["lr"] == h_ref.extra["lr"] and h.best_epoch == h_ref.best_epoch
        for a, b in zip(m.state_dict().values(), m_ref.state_dict().values()):
            assert torch.equal(a, b)


def test_fit_torch_pause_keeps_last_weights_and_bad_resume():
    X, y, _ = _regression(n=200)
    kw = dict(max_iter=10, batch_size=50, random_state=0, patience=None)
    model = _model(0)
    h = fit_torch(model, _mse, (X, y), pause_after=5, **kw)
    last = {k: v.clone() for k, v in model.state_dict().items()}
    assert h.paused and h.checkpoint["best_state"] is not None
    # the last weights, not the best ones, are in the model at the pause
    for k, v in model.state_dict().items():
        assert torch.equal(v, last[k])
    assert not fit_torch(_model(0), _mse, (X, y), pause_after=10, **kw).paused  # = max_iter
    done = fit_torch(_model(0), _mse, (X, y), **kw)
    with pytest.raises(ValueError, match="not paused"):
        fit_torch(model, _mse, (X, y), resume=done, **kw)
    with pytest.raises(ValueError, match="random_state"):
        fit_torch(model, _mse, (X, y), resume=h, **{**kw, "random_state": 1})
    with pytest.raises(ValueError, match="max_iter"):
        fit_torch(model, _mse, (X, y), resume=h, **{**kw, "max_iter": 5})
    with pytest.raises(ValueError, match="pause_after"):
        fit_torch(model, _mse, (X, y), resume=h, pause_after=5, **kw)
    with pytest.raises(TypeError, match="resume"):
        fit_torch(model, _mse, (X, y), resume={"n_epochs": 5}, **kw)
