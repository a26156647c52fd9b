"""crl_neuro.psychometrics."""
