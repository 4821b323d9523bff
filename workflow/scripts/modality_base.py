"""Rule modality_base: one family's store of a split, with the modality's dims."""
from mistmodel.study.logs import log_to

from mistgen.config import store_arguments
from mistgen.modality import build_modality_base, modality_from_config

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    modality = modality_from_config(sm.wildcards.modality, sm.params.entry, sm.params.base_dir)
    args = {k: v for k, v in store_arguments(sm.params.split_config).items()
            if k not in ("dim_range", "dim_y_range", "dim_grid")}
    build_modality_base(
        sm.output[0], modality, [sm.wildcards.family], seed=sm.params.seed,
        split=f"{sm.wildcards.split}.{sm.wildcards.family}", priors=sm.params.priors or None,
        overwrite=True, workers=1, **{"shard_size": sm.params.shard_size, **args},
    )
