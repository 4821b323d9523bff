"""Rule summarize: MSE / bias / variance by n-bin, dim and family; coverage; time."""
from common.logs import log_to
import xarray as xr

from common.outputs import atomic_output
from common.summary import summarize

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    ds = xr.load_dataset(snakemake.input[0], engine="h5netcdf")  # noqa: F821
    with atomic_output(snakemake.output[0]) as out:  # noqa: F821
        summarize(ds).to_netcdf(out, engine="h5netcdf")
