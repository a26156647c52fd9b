"""crl_neuro.rl."""
