"""Rule benchmark_conditional: one estimator of I(X;Y|Z) on one conditional store."""
from common.logs import log_to
from common.conditional_runs import benchmark_conditional_store
from common.estimators import make_estimator
from common.outputs import atomic_output

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    estimator = make_estimator(sm.params.estimator, checkpoint=sm.input.get("checkpoint"))
    ds = benchmark_conditional_store(sm.wildcards.estimator, estimator, sm.wildcards.split,
                                     sm.input.store)
    with atomic_output(sm.output[0]) as out:
        ds.to_netcdf(out, engine="h5netcdf")
