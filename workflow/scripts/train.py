"""Rule train: one MIST variant on the study's stores (a thin call into mistmodel)."""
from common.logs import log_to
from common.training import train_model

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    train_model(
        sm.params.model, train=list(sm.input.train), val=list(sm.input.val),
        init=sm.input.init[0] if sm.input.init else None, checkpoint=sm.output.checkpoint,
        seed=sm.params.seed,
    )
