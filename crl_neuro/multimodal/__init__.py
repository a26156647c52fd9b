"""crl_neuro.multimodal."""
