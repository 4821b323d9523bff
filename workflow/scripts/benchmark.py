"""Rule benchmark: one estimator on one test store (a thin call into mistmodel.study)."""
from mistmodel.study.logs import log_to
from mistmodel.study import benchmark_stores, make_estimator

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    spec = sm.params.estimator
    estimator = make_estimator(spec, checkpoint=sm.input.get("checkpoint"))
    ds = benchmark_stores(
        sm.wildcards.estimator, estimator,
        [(sm.wildcards.split, sm.wildcards.family, sm.input.store)],
        level=sm.params.level, n_boot=spec.get("n_boot", 0), seed=sm.params.seed,
    )
    ds.to_netcdf(sm.output[0], engine="h5netcdf")
