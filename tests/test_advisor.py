"""Tests of the identifiability advisor."""

import pandas as pd
import pytest

from crl_neuro.core.advisor import SETTINGS, TRAITS, AdvisorResult, advise

COLUMNS = ["setting", "identifiable", "conditions", "reference", "estimator", "depends_on_unknown"]


def keys(result):
    return list(result.to_frame().index)


def test_meeg_sessions_setting_points_to_sessioncrl():
    res = advise(iid=False, multi_domain=True, temporal=False, linear=True,
                 latent_confounders=False, latent_variables=True)
    df = res.to_frame()
    assert isinstance(res, AdvisorResult) and isinstance(df, pd.DataFrame)
    assert list(df.columns) == COLUMNS
    assert df.index[0] == "multi_distribution_latent"
    best = df.iloc[0]
    assert "Markov network" in best["identifiable"] and "intimate neighbours" in best["identifiable"]
    assert "ICML 2024" in best["reference"] and "Zhang" in best["reference"]
    assert "crl_neuro.meeg.SessionCRL" in best["estimator"]
    assert "crl_neuro.core.MultiDistributionCRL" in best["estimator"]
    assert best["depends_on_unknown"] == ""
    # settings for i.i.d. observed variables do not apply
    for k in ("pc_ges", "lingam", "fci", "cdnod", "rlcd", "temporal_latent"):
        assert k not in df.index


def test_iid_observed_linear_non_gaussian():
    res = advise(iid=True, linear=True, non_gaussian=True, latent_confounders=False,
                 latent_variables=False)
    assert keys(res) == ["lingam", "pc_ges"]
    df = res.to_frame()
    assert "unique" in df.loc["lingam", "identifiable"].lower()
    assert "Markov equivalence class" in df.loc["pc_ges", "identifiable"]
    assert "causallearn" in df.loc["lingam", "estimator"]


def test_nonlinear_iid_gives_anm_pnl_and_mec():
    res = advise(iid=True, linear=False, parametric=True, latent_confounders=False,
                 latent_variables=False)
    assert set(keys(res)) == {"anm", "pnl", "pc_ges"}
    res_np = advise(iid=True, linear=False, parametric=False, latent_confounders=False,
                    latent_variables=False)
    assert keys(res_np) == ["pc_ges"]


def test_latent_confounders_give_fci_pag():
    res = advise(iid=True, latent_confounders=True, latent_variables=False)
    assert keys(res) == ["fci"]
    assert "PAG" in res.to_frame().loc["fci", "identifiable"]


def test_linear_latent_measurement_gives_rlcd_and_gin():
    res = advise(iid=True, linear=True, latent_variables=True, non_gaussian=True)
    assert keys(res)[:2] == ["rlcd", "gin"]
    df = res.to_frame()
    assert "ICLR 2024" in df.loc["rlcd", "reference"]
    assert "LatentCausalModel" in df.loc["rlcd", "estimator"]
    assert "equivalence class" in df.loc["rlcd", "identifiable"]
    # Gaussian noise: GIN no longer applies, RLCD does
    gauss = keys(advise(iid=True, linear=True, latent_variables=True, non_gaussian=False))
    assert gauss[0] == "rlcd" and "gin" not in gauss


def test_heterogeneous_observed_gives_cdnod():
    res = advise(multi_domain=True, latent_variables=False, latent_confounders=False)
    assert keys(res) == ["cdnod"]
    assert "JMLR 2020" in res.to_frame().loc["cdnod", "reference"]
    assert res.traits["iid"] is False  # inferred


def test_temporal_and_rl():
    res = advise(temporal=True, latent_variables=True)
    assert keys(res)[0] == "temporal_latent"
    assert "component-wise" in res.to_frame().loc["temporal_latent", "identifiable"]
    rl = advise(actions=True, latent_variables=True)
    assert keys(rl)[0] == "ifactor"
    assert "crl_neuro.rl.IFactorWorldModel" in rl.to_frame().loc["ifactor", "estimator"]


def test_multimodal_and_abstraction():
    mm = advise(multimodal=True, latent_variables=True, iid=True)
    assert "multimodal" in keys(mm)
    assert "ICLR 2025" in mm.to_frame().loc["multimodal", "reference"]
    ab = advise(micro_macro=True, iid=True, latent_variables=False, latent_confounders=False)
    assert keys(ab)[0] == "abstraction"
    assert "crl_neuro.fmri.CausalROIs" in ab.to_frame().loc["abstraction", "estimator"]
    assert "abstraction" not in keys(advise(iid=True))


def test_changing_subspace_and_ivae_present_for_multi_domain_latents():
    res = advise(multi_domain=True, latent_variables=True, parametric=True)
    assert {"changing_subspace", "ivae"} <= set(keys(res))
    assert "Kong" in res.to_frame().loc["changing_subspace", "reference"]
    assert "Khemakhem" in res.to_frame().loc["ivae", "reference"]
    assert "ivae" not in keys(advise(multi_domain=True, latent_variables=True, parametric=False))


def test_unknown_traits_widen_and_are_flagged():
    res = advise()
    assert set(keys(res)) == {s.key for s in SETTINGS} - {"ifactor", "multimodal", "abstraction"}
    df = res.to_frame()
    assert df["depends_on_unknown"].str.len().gt(0).all()
    assert "iid=yes" in df.loc["pc_ges", "depends_on_unknown"]
    # knowing more never adds settings
    assert set(keys(advise(iid=True))) <= set(keys(res))


def test_str_is_a_readable_table():
    text = str(advise(iid=False, multi_domain=True, latent_variables=True))
    assert text.startswith("Identifiability advisor")
    assert "[1] Several distributions" in text
    for label in ("identifiable", "conditions", "reference", "use"):
        assert label in text
    assert max(len(line) for line in text.splitlines()) <= 110
    assert "AdvisorResult(" in repr(advise(iid=True))
    empty = advise(iid=True, latent_variables=False, latent_confounders=False, linear=False,
                   parametric=False, micro_macro=False)
    assert len(empty) == 1


def test_no_setting_message():
    res = advise(iid=False, multi_domain=False, temporal=False, auxiliary=False)
    assert len(res) == 0 and res.best is None
    assert "No setting" in str(res)
    assert res.to_frame().shape == (0, len(COLUMNS))


@pytest.mark.parametrize("kwargs, match", [
    ({"iid": "yes"}, "iid"),
    ({"linear": 1}, "linear"),
    ({"multimodal": None}, "multimodal"),
])
def test_type_errors_name_the_argument(kwargs, match):
    with pytest.raises(TypeError, match=match):
        advise(**kwargs)


@pytest.mark.parametrize("kwargs, match", [
    ({"iid": True, "temporal": True}, "iid=True contradicts temporal"),
    ({"iid": True, "multi_domain": True}, "iid=True contradicts multi_domain"),
    ({"linear": True, "parametric": False}, "linear=True contradicts parametric"),
    ({"actions": True, "temporal": False}, "actions"),
])
def test_contradictions_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        advise(**kwargs)


def test_every_setting_is_documented():
    for s in SETTINGS:
        assert s.reference and s.identifiable and s.conditions and s.estimator
        assert set(s.requires) <= set(TRAITS)
