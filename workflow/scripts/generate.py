"""Rule generate: one store of one split (a thin call into mistgen)."""
from common.logs import log_to
import mistgen

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    mistgen.build_meta_dataset(
        sm.output[0], **sm.params.recipe, overwrite=True, workers=sm.threads,
        scheduler=sm.config["dask_scheduler"],   # how, not what: not a param (no rerun)
        config={"split": sm.wildcards.split, "split_config": dict(sm.params.split_config),
                "priors": dict(sm.params.recipe["priors"] or {})},
    )
