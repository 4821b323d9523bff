"""Distribution families with closed-form mutual information.

Importing this package registers every family; see ``mistgen.registry.FAMILIES``.
"""
from . import additive, checks, gaussian, student  # noqa: F401  (registration side effects)
from .additive import additive_noise_mi
from .base import Family, gaussian_mi
from .student import student_mi_correction

__all__ = ["Family", "gaussian_mi", "student_mi_correction", "additive_noise_mi"]
