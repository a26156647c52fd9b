"""Small, generic torch training utilities shared by the nonlinear estimators.

* :func:`resolve_device` - ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` to a
  :class:`torch.device`, with a clear error when CUDA is requested but unavailable.
* :func:`torch_seed`, :func:`seed_everything`, :func:`make_generator` - turn a
  scikit-learn style ``random_state`` into torch seeds / generators.
* :func:`fit_torch` - mini-batch training loop with a validation split, early stopping
  (best weights restored), optional progress bar, returning a :class:`TrainingHistory`.
  It is the package's one torch training loop: parameter groups, a per-epoch schedule
  (``epoch_hook``: learning rate, penalty weights) and a delayed start of early
  stopping (``early_stopping_start``) let the estimators express their schedules
  with it instead of writing their own loops. A training can be paused after a
  number of epochs (``pause_after``) and continued exactly (``resume=history``),
  e.g. to train several restarts briefly and continue only the best one.

Reproducibility: :func:`fit_torch` runs inside :func:`torch.random.fork_rng`, seeded
from ``random_state``, so the same seed gives the same result on CPU without touching
the caller's global torch random state. Create the model under the same kind of seed
(e.g. ``with torch.random.fork_rng(): torch.manual_seed(torch_seed(rs)); model = ...``)
to make the initial weights reproducible too.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from crl_neuro.core.validation import check_choice, check_float, check_int

__all__ = [
    "resolve_device",
    "torch_seed",
    "seed_everything",
    "make_generator",
    "to_tensor",
    "fit_torch",
    "TrainingHistory",
    "standardize_posterior",
]


def resolve_device(device: Any = "cpu") -> Any:
    """Return a :class:`torch.device` for ``device``.

    Parameters
    ----------
    device : str | torch.device
        ``"cpu"``, ``"cuda"`` / ``"cuda:N"``, ``"mps"``, or ``"auto"`` (CUDA when
        available, else CPU).

    Returns
    -------
    device : torch.device

    Raises
    ------
    ValueError
        If the device string is unknown, or CUDA is requested but not available.
    """
    import torch

    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        if device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        try:
            dev = torch.device(device)
        except RuntimeError as err:
            raise ValueError(
                f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got {device!r}"
            ) from err
    else:
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={str(dev)!r} was requested but CUDA is not available (torch "
                f"{torch.__version__}, CPU build or no GPU); use device='cpu' or 'auto'"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={str(dev)!r}: only {torch.cuda.device_count()} CUDA device(s) available"
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError("device='mps' was requested but MPS is not available")
    elif dev.type != "cpu":
        raise ValueError(f"device must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto', got {str(dev)!r}")
    return dev


def torch_seed(random_state: Any = None) -> int:
    """Derive an integer seed from a scikit-learn style ``random_state``.

    Parameters
    ----------
    random_state : None | int | numpy.random.RandomState | numpy.random.Generator
        ``int`` is used as is (must be in ``[0, 2**32)``); ``None`` draws from numpy's
        global RandomState (as scikit-learn); a RandomState/Generator is advanced by
        one draw.

    Returns
    -------
    seed : int
    """
    from crl_neuro.core.validation import check_seed

    # One policy for every estimator (see crl_neuro.core.validation.check_seed).
    return check_seed(random_state)


def seed_everything(random_state: Any = None) -> Any:
    """Seed Python's, numpy's legacy and torch's (CPU and CUDA) global generators.

    Prefer :func:`make_generator` or :func:`fit_torch`'s ``random_state`` inside
    library code; this is for scripts and tests.

    Returns
    -------
    generator : torch.Generator
        A CPU generator seeded with the same seed.
    """
    import torch

    seed = torch_seed(random_state)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices
    return make_generator(seed)


def make_generator(random_state: Any = None, device: Any = "cpu") -> Any:
    """Return a :class:`torch.Generator` on ``device`` seeded from ``random_state``."""
    import torch

    g = torch.Generator(device=resolve_device(device))
    g.manual_seed(torch_seed(random_state))
    return g


def to_tensor(X: Any, device: Any = "cpu", dtype: Any = None) -> Any:
    """Convert an array to a torch tensor on ``device`` (float32 for floats by default)."""
    import torch

    dev = resolve_device(device)
    if isinstance(X, torch.Tensor):
        t = X
    else:
        t = torch.as_tensor(np.asarray(X))
    if dtype is None and t.is_floating_point():
        dtype = torch.float32
    return t.to(device=dev, dtype=dtype) if dtype is not None else t.to(device=dev)


def standardize_posterior(mean: Any, logvar: Any, running_mean: Any, running_var: Any,
                          momentum: float, training: bool) -> tuple[Any, Any]:
    """Pin the scale of VAE posterior means to 1: batch statistics in training, running ones otherwise.

    A latent-variable ELBO is invariant to rescaling a latent (prior, posterior and
    decoder absorb the scale) while sparsity penalties on latent-to-latent weights are
    not: without a fixed scale a penalty is reduced by inflating parents instead of
    removing edges. Latents are only identified up to scale, so the scale is fixed.

    Parameters
    ----------
    mean, logvar : torch.Tensor, shape (n_samples, n_latents)
        Posterior means and log-variances.
    running_mean, running_var : torch.Tensor, shape (n_latents,)
        Buffers updated in place (exponential moving average, ``momentum``) in training.
    momentum : float
    training : bool
        Use (and record) the batch statistics; with a single sample the running ones
        are used.

    Returns
    -------
    mean, logvar : torch.Tensor
        Standardised means and the log-variances on the same scale.
    """
    import torch

    if training and mean.shape[0] > 1:
        mu, var = mean.mean(dim=0), mean.var(dim=0, unbiased=False)
        with torch.no_grad():
            running_mean.lerp_(mu.detach(), momentum)
            running_var.lerp_(var.detach(), momentum)
    else:
        mu, var = running_mean, running_var
    var = var + 1e-6
    return (mean - mu) / torch.sqrt(var), logvar - torch.log(var)


@dataclass
class TrainingHistory:
    """What :func:`fit_torch` did.

    Attributes
    ----------
    train_loss : list of float
        Mean training loss per epoch.
    val_loss : list of float
        Validation loss per epoch (empty without a validation set).
    best_epoch : int
        Epoch (0-based) whose weights were kept.
    best_loss : float
        Monitored loss at ``best_epoch`` (validation if available, else training).
    n_epochs : int
        Number of epochs run.
    stopped_early : bool
        Whether training stopped because the monitored loss stopped improving.
    device : str
        Device used.
    time_s : float
        Wall-clock training time.
    extra : dict of str to list
        Per-epoch values returned by :func:`fit_torch`'s ``epoch_hook`` (one list
        per key, one entry per epoch); a ``callback`` may add its own lists.
    checkpoint : dict | None
        Set only when the training was paused (:func:`fit_torch`'s ``pause_after``):
        what ``fit_torch(..., resume=history)`` needs to continue it (optimiser
        state, best weights so far, patience counter, random generator states).
        None once a training has finished. Not part of :meth:`to_dict`.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_loss: float = math.inf
    n_epochs: int = 0
    stopped_early: bool = False
    device: str = "cpu"
    time_s: float = 0.0
    extra: dict[str, list[Any]] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def paused(self) -> bool:
        """Whether the training was paused and can be continued (``resume=``)."""
        return self.checkpoint is not None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (e.g. to store as a fitted attribute)."""
        return {
            "train_loss": [float(v) for v in self.train_loss],
            "val_loss": [float(v) for v in self.val_loss],
            "best_epoch": int(self.best_epoch),
            "best_loss": float(self.best_loss),
            "n_epochs": int(self.n_epochs),
            "stopped_early": bool(self.stopped_early),
            "device": str(self.device),
            "time_s": float(self.time_s),
            "extra": {str(k): list(v) for k, v in self.extra.items()},
        }


def _as_tensors(data: Any, name: str) -> tuple[Any, ...]:
    import torch

    items = data if isinstance(data, (tuple, list)) else (data,)
    if len(items) == 0:
        raise ValueError(f"{name} must contain at least one array")
    out = []
    for k, item in enumerate(items):
        t = item if isinstance(item, torch.Tensor) else to_tensor(item)
        if t.ndim == 0:
            raise ValueError(f"{name}[{k}] must have a sample axis, got a scalar")
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(f"{name}[{k}] contains NaN or infinite values")
        out.append(t)
    n = out[0].shape[0]
    if any(t.shape[0] != n for t in out):
        raise ValueError(f"all arrays in {name} must have the same number of samples (first axis)")
    return tuple(out)


def _optimised(model: Any, parameters: Any) -> tuple[list[Any], list[Any]]:
    """``(optimiser argument, parameters to clip)`` from ``fit_torch``'s ``parameters``."""
    if parameters is None:
        params = list(model.parameters())
        return params, params
    items = list(parameters)
    if not any(isinstance(item, dict) for item in items):
        return items, items
    if not all(isinstance(item, dict) for item in items):
        raise TypeError("parameters must be all tensors or all parameter-group dicts, not a mix")
    groups = []
    for k, group in enumerate(items):
        if "params" not in group:
            raise ValueError(f"parameter group {k} has no 'params' entry")
        ps = group["params"]
        ps = [ps] if hasattr(ps, "grad") else list(ps)
        groups.append({**group, "params": ps})
    flat = [p for group in groups for p in group["params"]]
    # clip in the model's parameter order (the grouping does not change the norm's sum)
    ids = {id(p) for p in flat}
    in_model = [p for p in model.parameters() if id(p) in ids]
    seen = {id(p) for p in in_model}
    return groups, in_model + [p for p in flat if id(p) not in seen]


def _is_loader(data: Any) -> bool:
    import torch

    return isinstance(data, torch.utils.data.DataLoader)


def fit_torch(
    model: Any,
    loss_fn: Callable[..., Any],
    data: Any,
    *,
    max_iter: int = 200,
    batch_size: int | None = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    optimizer: str = "adam",
    validation_fraction: float | None = 0.1,
    validation_data: Any = None,
    patience: int | None = 10,
    tol: float = 1e-4,
    clip_grad_norm: float | None = None,
    parameters: Sequence[Any] | None = None,
    callback: Callable[[int, TrainingHistory, Any], bool | None] | None = None,
    device: Any = "cpu",
    verbose: int = 0,
    random_state: Any = None,
    epoch_hook: Callable[[int, Any], dict[str, Any] | None] | None = None,
    early_stopping_start: int = 0,
    abs_tol: float | None = None,
    min_batch_size: int = 1,
    validation_batch_size: int | None | str = "batch_size",
    shuffle_generator: Any = None,
    fork_rng: bool = True,
    pause_after: int | None = None,
    resume: TrainingHistory | None = None,
) -> TrainingHistory:
    """Train ``model`` by mini-batch gradient descent with early stopping.

    Parameters
    ----------
    model : torch.nn.Module
        Trained in place and moved to ``device``; at the end it holds the weights of
        the best epoch and is left in ``eval()`` mode.
    loss_fn : callable
        ``loss_fn(model, batch) -> torch.Tensor`` (scalar), where ``batch`` is a tuple
        of tensors on ``device`` (the rows of each array in ``data``).
    data : tensor, array, tuple of those, or torch DataLoader
        Training data. Arrays/tensors share their first (sample) axis; they are
        split into training and validation parts (``validation_fraction``) and
        shuffled every epoch with a generator seeded from ``random_state``. A
        DataLoader is used as is (its own shuffling; pass ``validation_data``).
    max_iter : int
        Maximum number of epochs.
    batch_size : int | None
        Mini-batch size; ``None`` for full batch (arrays only).
    lr, weight_decay : float
        Optimiser learning rate and L2 weight decay.
    optimizer : {"adam", "adamw", "sgd"}
        Optimiser.
    validation_fraction : float | None
        Fraction of samples held out for early stopping, in ``[0, 0.5]`` (arrays only).
        0 monitors the training loss (the arrays are still permuted once, as by a
        split). ``None``: no split at all, the arrays are used in their given order
        (the caller's split, e.g. with ``validation_data``; without it the training
        loss is monitored).
    validation_data : same types as ``data``, optional
        Explicit validation set (then nothing of ``data`` is held out; the training
        arrays are still permuted once unless ``validation_fraction=None``).
    patience : int | None
        Stop after this many epochs without improvement of the monitored loss by more
        than ``tol`` (relative to its magnitude, at least ``abs_tol`` absolute);
        ``None`` disables early stopping.
    tol : float
        Minimal relative improvement.
    clip_grad_norm : float | None
        Clip the total gradient norm of the optimised parameters to this value.
    parameters : sequence of tensors or of dicts, optional
        Parameters to optimise (default ``model.parameters()``), either tensors or
        parameter groups in torch's form, ``[{"params": [...], "weight_decay": 0.0},
        ...]``: a group's own options (``lr``, ``weight_decay``, ...) override ``lr``
        and ``weight_decay`` (e.g. no weight decay on penalised weights). With groups,
        ``clip_grad_norm`` acts on all their parameters together, taken in the order
        of ``model.parameters()``.
    callback : callable, optional
        ``callback(epoch, history, model)`` after each epoch (after the validation
        loss and the best-state bookkeeping of that epoch); returning ``True`` stops
        training. It may record its own per-epoch values in ``history.extra``.
    device : str | torch.device
        See :func:`resolve_device`.
    verbose : int
        0 silent; >= 1 shows a tqdm progress bar with the current losses.
    random_state : None | int | numpy random generator
        Seeds the split, the shuffling and torch's random ops (dropout, sampling)
        during training.
    epoch_hook : callable, optional
        ``epoch_hook(epoch, optimizer) -> dict | None`` called at the start of every
        epoch, before its first batch: a schedule. It may change the optimiser's
        ``param_groups`` (e.g. set ``group["lr"]`` for a learning-rate decay) and
        update state that ``loss_fn`` reads (e.g. a penalty weight in a closure).
        The values of the returned dict are appended to ``history.extra[key]``.
        Note that the validation loss of an epoch is computed with the state the hook
        set for that epoch, so a schedule that changes the objective makes early
        epochs incomparable: see ``early_stopping_start``.
    early_stopping_start : int
        First epoch (0-based) whose monitored loss may be kept as the best one and
        from which ``patience`` counts; earlier epochs are trained and recorded but
        never restored (e.g. while a penalty weight is still ramping up). When
        training ends before it, the last weights are kept (``best_epoch`` is -1).
    abs_tol : float | None
        Absolute floor of the required improvement; ``None`` uses ``tol``, ``0``
        makes the criterion purely relative.
    min_batch_size : int
        Training batches with fewer samples (the last, short batch of an epoch) are
        skipped, e.g. 2 for a model that uses batch statistics (arrays only).
    validation_batch_size : int | None | "batch_size"
        Batch size of the validation pass: ``"batch_size"`` (default) the same as
        ``batch_size``, ``None`` the whole validation set at once (the monitored loss
        is then exactly ``loss_fn`` on it). The monitored loss of several batches is
        their size-weighted mean.
    shuffle_generator : torch.Generator, optional
        CPU generator that shuffles the training samples every epoch (arrays only);
        default a generator seeded from ``random_state``. Passing one (e.g. a
        :func:`make_generator`) lets a caller reproduce its own batch order.
    fork_rng : bool
        True (default): training runs inside :func:`torch.random.fork_rng`, with
        torch's global generator seeded from ``random_state``, and the caller's global
        random state is untouched. False: neither forked nor reseeded, torch's random
        ops continue the caller's stream (for callers that already seeded and forked
        it, e.g. around building the model) and leave it advanced.

    Returns
    -------
    history : TrainingHistory
    """
    import torch

    max_iter = check_int(max_iter, "max_iter", min_value=1)
    if batch_size is not None:
        batch_size = check_int(batch_size, "batch_size", min_value=1)
    lr = check_float(lr, "lr", min_value=0.0, inclusive=False)
    weight_decay = check_float(weight_decay, "weight_decay", min_value=0.0)
    check_choice(optimizer, "optimizer", ["adam", "adamw", "sgd"])
    presplit = validation_fraction is None
    validation_fraction = 0.0 if presplit else check_float(validation_fraction, "validation_fraction", 0.0, 0.5)
    if patience is not None:
        patience = check_int(patience, "patience", min_value=1)
    tol = check_float(tol, "tol", min_value=0.0)
    abs_tol = tol if abs_tol is None else check_float(abs_tol, "abs_tol", min_value=0.0)
    early_stopping_start = check_int(early_stopping_start, "early_stopping_start", min_value=0)
    min_batch_size = check_int(min_batch_size, "min_batch_size", min_value=1)
    if validation_batch_size == "batch_size":
        validation_batch_size = batch_size
    elif validation_batch_size is not None:
        validation_batch_size = check_int(validation_batch_size, "validation_batch_size", min_value=1)
    if epoch_hook is not None and not callable(epoch_hook):
        raise TypeError("epoch_hook must be callable: epoch_hook(epoch, optimizer) -> dict | None")
    if shuffle_generator is not None and not isinstance(shuffle_generator, torch.Generator):
        raise TypeError(f"shuffle_generator must be a torch.Generator, got {type(shuffle_generator).__name__}")
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError("loss_fn must be callable: loss_fn(model, batch) -> scalar tensor")
    dev = resolve_device(device)
    seed = torch_seed(random_state)
    start_epoch = 0
    if resume is not None:
        if not isinstance(resume, TrainingHistory):
            raise TypeError(f"resume must be a TrainingHistory returned by fit_torch, got "
                            f"{type(resume).__name__}")
        if resume.checkpoint is None:
            raise ValueError("resume: this history was not paused (no checkpoint); only a "
                             "history returned with pause_after can be resumed")
        if resume.checkpoint["seed"] != seed:
            raise ValueError(f"resume: random_state gives seed {seed} but the paused training "
                             f"used {resume.checkpoint['seed']}; pass the same random_state")
        start_epoch = resume.n_epochs
        if start_epoch >= max_iter:
            raise ValueError(f"resume: {start_epoch} epochs already run, max_iter={max_iter} "
                             "leaves nothing to train")
    if pause_after is not None:
        pause_after = check_int(pause_after, "pause_after", min_value=start_epoch + 1)

    model.to(dev)
    opt_params, params = _optimised(model, parameters)
    if not params:
        raise ValueError("model has no parameters to optimise")
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[optimizer]
    opt = opt_cls(opt_params, lr=lr, weight_decay=weight_decay)
    if resume is not None:
        opt.load_state_dict(resume.checkpoint["optimizer"])

    split_gen = torch.Generator().manual_seed(seed)
    if _is_loader(data):
        train_tensors, train_loader = None, data
    else:
        tensors = _as_tensors(data, "data")
        n = tensors[0].shape[0]
        n_val = int(round(validation_fraction * n)) if validation_data is None else 0
        if validation_fraction > 0 and validation_data is None:
            n_val = max(n_val, 1)
            if n - n_val < 1:
                raise ValueError(f"data has {n} samples: too few for validation_fraction={validation_fraction}")
        if not presplit:
            # random split (the data are permuted once even when nothing is held out)
            perm = torch.randperm(n, generator=split_gen)
            val_idx, tr_idx = perm[:n_val], perm[n_val:]
            train_tensors = tuple(t[tr_idx] for t in tensors)
            if n_val:
                validation_data = tuple(t[val_idx] for t in tensors)
        else:  # validation_fraction=None: the training arrays as given
            train_tensors = tensors
        train_loader = None
    val_tensors = val_loader = None
    if validation_data is not None:
        if _is_loader(validation_data):
            val_loader = validation_data
        else:
            val_tensors = _as_tensors(validation_data, "validation_data")

    def batches_of(tensors, shuffle_gen=None, size=batch_size, min_size=1):
        m = tensors[0].shape[0]
        bs = m if size is None else min(size, m)
        order = torch.randperm(m, generator=shuffle_gen) if shuffle_gen is not None else torch.arange(m)
        for start in range(0, m, bs):
            idx = order[start:start + bs]
            if idx.numel() < min_size:
                continue
            yield tuple(t[idx].to(dev) for t in tensors), idx.numel()

    def loader_batches(loader):
        for batch in loader:
            batch = batch if isinstance(batch, (tuple, list)) else (batch,)
            yield tuple(t.to(dev) for t in batch), len(batch[0])

    def evaluate():
        model.eval()
        total, count, values = 0.0, 0, []
        it = (batches_of(val_tensors, size=validation_batch_size) if val_tensors is not None
              else loader_batches(val_loader))
        with torch.no_grad():
            for batch, size in it:
                values.append(float(loss_fn(model, batch)))
                total += values[-1] * size
                count += size
        # one batch: its loss as is (no rounding through loss * size / size)
        return values[0] if len(values) == 1 else total / max(count, 1)

    history = TrainingHistory(device=str(dev))
    best_state = None
    wait = 0
    if resume is not None:  # continue the paused lists and early-stopping state
        history.train_loss, history.val_loss = list(resume.train_loss), list(resume.val_loss)
        history.best_epoch, history.best_loss = resume.best_epoch, resume.best_loss
        history.n_epochs, history.time_s = resume.n_epochs, resume.time_s
        history.extra = {k: list(v) for k, v in resume.extra.items()}
        best_state, wait = resume.checkpoint["best_state"], resume.checkpoint["wait"]
    paused = False
    t0 = time.perf_counter()
    fork_devices = [dev.index or 0] if dev.type == "cuda" else []
    from tqdm.auto import tqdm

    rng_context = torch.random.fork_rng(devices=fork_devices) if fork_rng else contextlib.nullcontext()
    with rng_context:
        if resume is not None:  # the generators as they were at the pause
            torch.set_rng_state(resume.checkpoint["rng_cpu"])
            if resume.checkpoint["rng_cuda"] is not None and dev.type == "cuda":
                torch.cuda.set_rng_state(resume.checkpoint["rng_cuda"], dev)
        elif fork_rng:
            torch.manual_seed(seed)
        shuffle_gen = (torch.Generator().manual_seed(seed + 1) if shuffle_generator is None
                       else shuffle_generator)
        if resume is not None and resume.checkpoint["shuffle_state"] is not None:
            shuffle_gen.set_state(resume.checkpoint["shuffle_state"])
        bar = tqdm(range(start_epoch, max_iter), disable=not verbose, desc="training", leave=False)
        for epoch in bar:
            if epoch_hook is not None:
                state = epoch_hook(epoch, opt)
                for key, value in (state or {}).items():
                    history.extra.setdefault(key, []).append(value)
            model.train()
            total, count = 0.0, 0
            it = (batches_of(train_tensors, shuffle_gen, min_size=min_batch_size) if train_loader is None
                  else loader_batches(train_loader))
            for batch, size in it:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model, batch)
                if not torch.is_tensor(loss) or loss.ndim != 0:
                    raise TypeError("loss_fn must return a scalar torch tensor")
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"loss became {float(loss)} at epoch {epoch}; lower lr or check the data"
                    )
                loss.backward()
                if clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, clip_grad_norm)
                opt.step()
                total += float(loss.detach()) * size
                count += size
            history.train_loss.append(total / max(count, 1))
            if val_tensors is not None or val_loader is not None:
                history.val_loss.append(evaluate())
                monitored = history.val_loss[-1]
            else:
                monitored = history.train_loss[-1]
            history.n_epochs = epoch + 1
            if verbose:
                post = {"loss": f"{history.train_loss[-1]:.4g}"}
                if history.val_loss:
                    post["val"] = f"{history.val_loss[-1]:.4g}"
                bar.set_postfix(post)
            if epoch >= early_stopping_start:
                threshold = (max(tol * abs(history.best_loss), abs_tol)
                             if np.isfinite(history.best_loss) else 0)
                if monitored < history.best_loss - threshold:
                    history.best_loss, history.best_epoch = monitored, epoch
                    best_state = copy.deepcopy(model.state_dict())
                    wait = 0
                else:
                    wait += 1
            if callback is not None and callback(epoch, history, model):
                break
            if patience is not None and wait >= patience:
                history.stopped_early = True
                break
            if pause_after is not None and epoch + 1 == pause_after and epoch + 1 < max_iter:
                paused = True
                break
        bar.close()
        if paused:  # everything needed to continue as if there had been no pause
            history.checkpoint = {
                "optimizer": copy.deepcopy(opt.state_dict()), "best_state": best_state,
                "wait": wait, "seed": seed, "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(dev) if dev.type == "cuda" else None,
                "shuffle_state": shuffle_gen.get_state() if train_loader is None else None,
            }
    if best_state is not None and not paused:
        model.load_state_dict(best_state)
    model.eval()
    history.time_s += time.perf_counter() - t0
    return history
