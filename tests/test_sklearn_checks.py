"""scikit-learn's estimator checks on every crl_neuro estimator that takes plain arrays.

Estimators that take arrays: :class:`MultiDistributionCRL` and :class:`IVAE`
(``fit(X, domains)``) and :class:`LatentCausalModel` (``fit(data)``). The others
take dicts of modalities (:class:`MultiModalCRL`), trajectories of shape
(n_episodes, n_steps, n_features) (:class:`IFactorWorldModel`), image stacks with
an attribute table (:class:`CausalImageModel`), an environment
(:class:`CEMPolicy`), MNE instances (:class:`SessionCRL`) or Niimg-like images
(:class:`CausalROIs`): scikit-learn's checks cannot feed them.

Every exclusion below is listed with the reason it cannot pass by design.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from crl_neuro.core.multidist import MultiDistributionCRL
from crl_neuro.core.nonlinear import IVAE
from crl_neuro.psychometrics import LatentCausalModel

# The second argument of ``fit`` is ``domains``, a required label per sample that the
# method needs (it learns from how distributions change across domains): it is
# named for what it is, so the checks that insist on the name ``y`` (including
# ``fit_transform(X, y=y)`` of the transformer checks) cannot pass. Positional
# ``fit(X, y)`` calls, as in the other checks, work.
_DOMAINS = {
    "check_fit_score_takes_y": "the second argument of fit is `domains`, not `y`",
    "check_transformer_general": "calls fit_transform(X, y=y); the argument is `domains`",
    "check_transformer_data_not_an_array": "calls fit_transform(X, y=y); the argument is `domains`",
}

# A questionnaire needs at least 4 items (a latent needs several indicators) and more
# respondents than items; scikit-learn's generic check data have 2 or 3 features.
_FEW_ITEMS = "scikit-learn's check data have fewer than the 4 items a questionnaire needs"
_LCM = {name: _FEW_ITEMS for name in (
    "check_fit_score_takes_y",
    "check_estimators_overwrite_params",
    "check_dont_overwrite_parameters",
    "check_estimators_fit_returns_self",
    "check_readonly_memmap_input",
    "check_pipeline_consistency",
    "check_estimators_pickle",
    "check_f_contiguous_array_estimator",
    "check_transformer_data_not_an_array",
    "check_transformer_general",
    "check_transformer_preserve_dtypes",
    "check_methods_sample_order_invariance",
    "check_methods_subset_invariance",
    "check_fit2d_1feature",
    "check_dict_unchanged",
    "check_fit_idempotent",
    "check_fit_check_is_fitted",
    "check_n_features_in",
    "check_fit2d_predict1d",
    "check_estimators_nan_inf",
)}
_LCM["check_n_features_in_after_fitting"] = (
    "the argument is `data` (a questionnaire table), so the message names `data`, not `X`"
)

EXPECTED_FAILED = {
    "MultiDistributionCRL": _DOMAINS,
    "IVAE": _DOMAINS,
    "LatentCausalModel": _LCM,
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED[type(estimator).__name__]


@parametrize_with_checks(
    [
        MultiDistributionCRL(2, random_state=0),
        IVAE(2, hidden=8, max_iter=2, random_state=0),
        LatentCausalModel(),
    ],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
