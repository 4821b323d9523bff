"""mistmodel: mutual information estimators (KSG, MINE, InfoNCE, CCA, MIST) and MIST training."""

__version__ = "0.1.0"
from .mist import MIST  # noqa: E402,F401
