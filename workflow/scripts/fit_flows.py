"""Rule fit_flows: nflows flows for the X and Y columns of a modality's data."""
from common.logs import log_to

from mistgen.flows import fit_modality_from_config

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    fit_modality_from_config(sm.wildcards.modality, sm.params.entry, sm.output[0],
                             base_dir=sm.params.base_dir)
