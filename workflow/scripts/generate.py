"""Rule generate: one family's store of one split (a thin call into mistgen)."""
from mistmodel.study.logs import log_to
import mistgen
from mistgen.config import store_arguments

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    mistgen.build_meta_dataset(
        sm.output[0],
        specs=[sm.wildcards.family],
        seed=sm.params.seed,
        split=f"{sm.wildcards.split}.{sm.wildcards.family}",
        priors=sm.params.priors or None,
        overwrite=True,
        workers=sm.threads,
        scheduler=sm.params.scheduler,
        config={"split": sm.wildcards.split, "split_config": dict(sm.params.split_config),
                "priors": dict(sm.params.priors)},
        **{"shard_size": sm.params.shard_size, **store_arguments(sm.params.split_config)},
    )
