"""crl_neuro.meeg."""
