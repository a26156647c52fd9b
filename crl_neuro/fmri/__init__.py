"""crl_neuro.fmri."""
