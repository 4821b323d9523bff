"""Rule combine: all parts of a run into one Dataset (estimator x datapoint)."""
from common.logs import log_to
import xarray as xr

from common.benchmark import combine_estimates
from common.outputs import atomic_output

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    parts = [xr.load_dataset(p, engine="h5netcdf") for p in snakemake.input]  # noqa: F821
    with atomic_output(snakemake.output[0]) as out:  # noqa: F821
        combine_estimates(parts).to_netcdf(out, engine="h5netcdf")
