"""Rule summarize: MSE / bias / variance by n-bin, dim and family; coverage; time."""
import sys

import xarray as xr

from mistmodel.study import summarize

with open(snakemake.log[0], "w") as log:  # noqa: F821 (snakemake injects this object)
    sys.stderr = log
    ds = xr.load_dataset(snakemake.input[0], engine="h5netcdf")  # noqa: F821
    summarize(ds).to_netcdf(snakemake.output[0], engine="h5netcdf")  # noqa: F821
