"""MNE adapter: SessionCRL, leadfield localisation and plots."""

from crl_neuro.meeg.localization import scan_leadfield
from crl_neuro.meeg.session_crl import SessionCRL

__all__ = ["SessionCRL", "scan_leadfield"]
