"""mistgen: meta-datasets of samples whose mutual information is known exactly.

Public API:
    sample(spec, n, dim_x, dim_y, seed)          -> Sample(x, y, mi, params, spec, seed)
    build_meta_dataset(path, specs, count, ...)  -> MetaDataset   (sharded Zarr v3 store)
    build_conditional_dataset(path, specs, ...)  -> MetaDataset   of (X, Y, Z) samples with
                                                    I(X;Y|Z) (see mistgen.conditional)
    open_meta_dataset(path)                      -> MetaDataset
    verify_store(path)                           -> VerifyReport  (also: mistgen verify PATH)
    FAMILIES, TRANSFORMS                         registries of the names a spec may use
"""
from .errors import (
    MergedValuesWarning,
    MistgenError,
    PriorError,
    ShapeError,
    SpecError,
    StoreError,
    StoreWarning,
)
from .modality import Modality, ModalityError, build_modality_base, load_modality, modality_from_config
from .registry import FAMILIES, TRANSFORMS
from .build import build_conditional_dataset, build_meta_dataset, write_store
from .dataset import ConcatMetaDataset, MetaDataset, open_meta_dataset
from .sampling import Sample, sample
from .spec import parse_spec
from .verify import VerifyReport, verify_store

__version__ = "0.1.0"

__all__ = [
    "FAMILIES", "TRANSFORMS", "Sample", "sample", "parse_spec",
    "build_meta_dataset", "build_conditional_dataset", "open_meta_dataset", "MetaDataset", "ConcatMetaDataset", "write_store",
    "Modality", "ModalityError", "build_modality_base", "load_modality", "modality_from_config",
    "verify_store", "VerifyReport",
    "MistgenError", "SpecError", "ShapeError", "PriorError", "StoreError", "StoreWarning",
    "MergedValuesWarning",
    "__version__",
]
