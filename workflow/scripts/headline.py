"""Rule headline: results/headline.md, the headline tables of every run (conditional runs
included)."""
from common.logs import log_to
import xarray as xr

from common.conditional_runs import conditional_markdown
from common.outputs import atomic_output
from common.summary import headline_document

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    summaries = {run: xr.load_dataset(path, engine="h5netcdf")
                 for run, path in zip(sm.params.runs, sm.input.runs)}
    page = headline_document(summaries) if summaries else "# Results\n"
    for run, path in zip(sm.params.conditional_runs, sm.input.conditional):
        page += "\n" + conditional_markdown(xr.load_dataset(path, engine="h5netcdf"),
                                            f"Conditional run `{run}`")
    with atomic_output(sm.output[0]) as out:
        out.write_text(page)
