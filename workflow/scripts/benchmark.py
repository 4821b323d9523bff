"""Rule benchmark: one estimator on one test store (a thin call into the study layer)."""
from common.logs import log_to
from common.benchmark import benchmark_stores
from common.estimators import make_estimator
from common.outputs import atomic_output

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    spec = sm.params.estimator
    estimator = make_estimator(spec, checkpoint=sm.input.get("checkpoint"))
    ds = benchmark_stores(
        sm.wildcards.estimator, estimator,
        [(sm.wildcards.split, sm.wildcards.family, sm.input.store)],
        level=sm.params.level, n_boot=spec["n_boot"], seed=sm.params.seed,
    )
    with atomic_output(sm.output[0]) as out:
        ds.to_netcdf(out, engine="h5netcdf")
