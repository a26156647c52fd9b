"""MNE adapter: SessionCRL, leadfield localisation, localization priors and plots."""

from crl_neuro.meeg.localization import scan_leadfield
from crl_neuro.meeg.priors import LeadfieldPrior
from crl_neuro.meeg.session_crl import SessionCRL

__all__ = ["LeadfieldPrior", "SessionCRL", "scan_leadfield"]
