"""Rule figures: PNG figures of a run."""
from common.logs import log_to
from pathlib import Path

import xarray as xr

from common.figures import draw_all

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    ds = xr.load_dataset(sm.input.estimates, engine="h5netcdf")
    summary = xr.load_dataset(sm.input.summary, engine="h5netcdf")
    draw_all(ds, summary, Path(sm.output.error_vs_n).parent)
