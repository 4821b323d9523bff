"""Rule calibrate: MIST-QR's split-conformal interval factors, into a new checkpoint."""
from common.logs import log_to
from common.calibration import calibrate_checkpoint

with log_to(snakemake.log[0]):  # noqa: F821 (snakemake injects this object)
    sm = snakemake  # noqa: F821
    calibrate_checkpoint(sm.input.checkpoint, list(sm.input.stores), sm.output[0])
