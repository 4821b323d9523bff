"""Range checks for the fields of the training configs: a bad value is refused when the
config is made, naming the field, before any file is written."""
from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_fields", "check_switches_and_seed", "OPTIMISATION_RANGES"]

# the optimisation settings both training configs share: field -> (low, high, low open,
# high open)
OPTIMISATION_RANGES = {"lr": (0.0, math.inf, True, True),
                       "weight_decay": (0.0, math.inf, False, True),
                       "warmup": (0.0, 1.0, False, True),
                       "min_lr_ratio": (0.0, 1.0, False, False),
                       "grad_clip": (0.0, math.inf, True, True),
                       "log_weight": (0.0, math.inf, False, True),
                       "log_eps": (0.0, math.inf, True, True)}


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))


def check_fields(config: Any, positive_ints: tuple[str, ...] = (),
                 ranges: dict[str, tuple[float, float, bool, bool]] | None = None) -> None:
    """``positive_ints``: fields that must be integers >= 1 (None allowed where the field
    defaults to None).  ``ranges``: field -> ``(low, high, low_open, high_open)``, a finite
    number within it (an open end excludes its bound)."""
    for name in positive_ints:
        value = getattr(config, name)
        if value is None and type(config).__dataclass_fields__[name].default is None:
            continue
        if not (_is_int(value) and value >= 1):
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    for name, (low, high, low_open, high_open) in (ranges or {}).items():
        value = getattr(config, name)
        inside = _is_number(value) and (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        if not inside:
            span = (f"{'(' if low_open else '['}{low:g}, "
                    f"{high:g}{')' if high_open else ']'}")
            raise ValueError(f"{name} must be a finite number in {span}, got {value!r}")


def check_switches_and_seed(config: Any, switches: tuple[str, ...]) -> None:
    """``switches`` must be true or false, and ``seed`` a whole number in [0, 2**63)."""
    for name in switches:
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false; got {getattr(config, name)!r}")
    if not _is_int(config.seed) or not 0 <= config.seed < 2 ** 63:
        raise ValueError(f"seed must be a whole number from 0 to 2**63 - 1; got "
                         f"{config.seed!r}")
