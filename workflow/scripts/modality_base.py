"""Rule modality_base: one store of a split, with the modality's dims."""
from common.logs import log_to

from mistgen.modality import build_modality_base, modality_from_config

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    modality = modality_from_config(sm.wildcards.modality, sm.params.entry, sm.params.base_dir)
    build_modality_base(sm.output[0], modality, overwrite=True, workers=1, **sm.params.recipe)
