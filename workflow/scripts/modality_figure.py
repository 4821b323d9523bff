"""Rule modality_figure: a few warped samples beside the modality's real data."""
from common.logs import log_to

from mistgen import open_meta_dataset
from mistgen.modality import modality_from_config
from mistgen.warp import plot_warped_samples

from common.outputs import atomic_output

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    modality = modality_from_config(sm.wildcards.modality, sm.params.entry, sm.params.base_dir)
    with atomic_output(sm.output[0]) as out:
        plot_warped_samples(open_meta_dataset(sm.input.warped), modality, out, count=3,
                            base=open_meta_dataset(sm.input.base))
