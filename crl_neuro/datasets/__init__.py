"""crl_neuro.datasets."""
