"""Rule warp: push a base store through a modality's flows (labels unchanged)."""
from common.logs import log_to

from mistgen.warp import warp_store, warp_summary

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    warped = warp_store(sm.input.base, sm.input.flows, sm.output[0],
                        modality=sm.wildcards.modality, overwrite=True, workers=1)
    print(warp_summary(warped))
