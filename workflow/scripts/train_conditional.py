"""Rule train_conditional: MIST's conditional network (a thin call into mistmodel)."""
from common.logs import log_to
from common.training import train_conditional_model

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    train_conditional_model(sm.params.model, init=sm.input.init, checkpoint=sm.output.checkpoint,
                            seed=sm.params.seed,
                            train_store=getattr(sm.input, "train", None),
                            val_store=getattr(sm.input, "val", None))
