"""crl_neuro.generative."""
