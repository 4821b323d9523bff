"""Rule headline: results/headline.md, the headline tables of every run."""
from common.logs import log_to
import xarray as xr

from common.summary import headline_document

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    summaries = {run: xr.load_dataset(path, engine="h5netcdf")
                 for run, path in zip(sm.params.runs, sm.input)}
    with open(sm.output[0], "w") as f:
        f.write(headline_document(summaries))
