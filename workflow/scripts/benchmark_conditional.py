"""Rule benchmark_conditional: one estimator of I(X;Y|Z) on one conditional store."""
from common.logs import log_to
from common.conditional_runs import benchmark_conditional_store
from common.estimators import make_estimator

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    estimator = make_estimator(sm.params.estimator, checkpoint=sm.input.get("checkpoint"))
    benchmark_conditional_store(sm.wildcards.estimator, estimator, sm.wildcards.split,
                                sm.input.store).to_netcdf(sm.output[0], engine="h5netcdf")
