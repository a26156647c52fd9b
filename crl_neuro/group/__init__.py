"""Group studies: fit one estimator per subject/session, resumably and at scale.

:func:`fit_group` fits one :func:`sklearn.base.clone` of an estimator per subject
(or per session, whatever unit the keys name) through :class:`joblib.Parallel`
without naming a backend, so the same call runs serially, on local processes
(``n_jobs``) or on a cluster::

    from dask.distributed import Client
    import joblib

    client = Client(cluster)                       # LocalCluster, SLURMCluster, ...
    with joblib.parallel_config(backend="dask"):
        result = fit_group(SessionCRL(n_sources=4), subjects, out_dir="derivatives/crl")

Each fitted estimator is written to ``out_dir / f"{subject}.crl"`` as soon as it
finishes (a temporary name, then an atomic rename), so an interrupted run loses
nothing finished. The file carries a fingerprint of the estimator's class and
parameters, the seed, the fit parameters and the inputs: a rerun skips a subject only
if its file is intact and its fingerprint matches, and refits it otherwise. Failures,
including a crashed worker process, are collected with their tracebacks instead of
aborting the study.

Group summaries: :func:`network_consistency` (how often each latent network edge
recurs across subjects after matching latents by sensor pattern or location),
:func:`roi_overlap` (Dice/ARI agreement of learned ROI maps and a probabilistic
group atlas) and :func:`grand_average_stc` (average of per-subject source
estimates, morphed to a common subject when a FreeSurfer ``subjects_dir`` exists).

Layout: the runner (:func:`fit_group` and its seeds, loading, fingerprints, saving and
crash handling) is in ``crl_neuro.group._runner``, the summaries in
``crl_neuro.group._summaries``; import the names from ``crl_neuro.group``.
"""

from __future__ import annotations

from crl_neuro.group._runner import (
    GroupFitError,
    GroupResult,
    default_loader,
    fit_group,
    subject_seed,
)
from crl_neuro.group._summaries import (
    grand_average_stc,
    network_consistency,
    roi_overlap,
)

__all__ = [
    "fit_group",
    "GroupResult",
    "GroupFitError",
    "default_loader",
    "subject_seed",
    "network_consistency",
    "roi_overlap",
    "grand_average_stc",
]

# The public names keep the module they had when crl_neuro.group was one file: their
# reprs and pickles name crl_neuro.group, and fit_group's fingerprints, which include
# the loader's module and name, stay those of files saved before the split (a changed
# name would refit every subject of an existing out_dir).
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
