"""Rule report_conditional: a conditional run's parts into estimates, summary and figure."""
from common.logs import log_to
import xarray as xr

from common.benchmark import combine_estimates
from common.conditional_runs import conditional_summary, plot_conditional
from common.outputs import atomic_output

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    estimates = combine_estimates([xr.load_dataset(p, engine="h5netcdf") for p in sm.input])
    with atomic_output(sm.output.estimates) as out:
        estimates.to_netcdf(out, engine="h5netcdf")
    summary = conditional_summary(estimates)
    with atomic_output(sm.output.summary) as out:
        summary.to_netcdf(out, engine="h5netcdf")
    plot_conditional(summary, sm.output.figure)
