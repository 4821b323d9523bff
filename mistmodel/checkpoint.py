"""MIST checkpoints as data: weights in safetensors, everything else as a JSON card.

A checkpoint is one ``.safetensors`` file.  Its tensors are the network's ``state_dict``;
its header metadata holds the *card* under the key ``"mist_card"``: a JSON object with at
least ``format`` (:data:`FORMAT`), ``variant`` and ``model_config``, plus whatever the
trainer records (data ranges, validation figures, interval calibration, the recipe).
Reading one parses a JSON header and copies tensors: nothing in the file is executed.

    from mistmodel.checkpoint import save_checkpoint, load_checkpoint, read_card
    save_checkpoint("model.safetensors", net.state_dict(), {"variant": ..., "model_config": ...})
    state, card = load_checkpoint("model.safetensors")

Pickle-based ``.pt`` files (what ``torch.save`` writes) are refused by
:func:`load_checkpoint`, since unpickling can run arbitrary code.  Converting one of your
own is an explicit step that unpickles with ``torch.load(weights_only=True)`` (tensors and
plain containers only)::

    python -m mistmodel.checkpoint convert old.pt new.safetensors
"""
from __future__ import annotations

import json
import math
import os
import re
import secrets
import sys
from pathlib import Path
from typing import Any, Mapping

import torch

from .calibration import calibration_problem, is_finite_number

__all__ = ["FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "read_card",
           "convert_legacy"]

FORMAT = "mist-checkpoint/2"
CARD_KEY = "mist_card"
REQUIRED_CARD_KEYS = ("format", "variant", "model_config")
# data_ranges keys that count rows or columns, and their smallest meaningful value
COUNT_RANGES = {"n": 2, "dim_x": 1, "dim_y": 1, "dim_z": 1}
_PICKLE_MAGIC = (b"PK\x03\x04", b"\x80")   # torch.save's zip archive; a raw pickle


class CheckpointError(ValueError):
    """A file that is not a readable MIST checkpoint (the message says why)."""


def _new_file_mode() -> int:
    """The mode a new file gets under this process's umask (read, not set: setting it
    would change it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o644


def partial_path(path: Path) -> Path:
    """Where ``path`` is written before it is renamed into place:
    ``.<name>.partial-<pid>-<random>``, so that two writers of one path, in two processes
    or two threads of one, never share a temporary file."""
    return path.with_name(f".{path.name}.partial-{os.getpid()}-{secrets.token_hex(4)}")


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, torch.Tensor],
                    card: Mapping[str, Any]) -> Path:
    """Write ``state`` (name -> tensor) and ``card`` (JSON-ready) to ``path`` atomically."""
    from safetensors.torch import save_file

    card = {"format": FORMAT, **dict(card)}
    _check_card(card, Path(path))
    text = card_json(card, Path(path), sort_keys=True)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    try:
        save_file(tensors, str(tmp), metadata={CARD_KEY: text})
        os.chmod(tmp, _new_file_mode())     # safetensors writes 0o600 whatever the umask
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def card_json(card: Mapping[str, Any], path: Path, **dumps_args: Any) -> str:
    """``card`` as strict JSON (``json.dumps`` arguments in ``dumps_args``).  JSON has no
    NaN or infinity, and strict readers refuse Python's ``NaN``: such a number is refused,
    named by its key path (a figure with no value is null in a card, as the trainer
    writes it)."""
    where = _non_finite_key(card)
    if where is not None:
        key, value = where
        raise CheckpointError(f"{path}: {key} is {value}, which JSON cannot hold; write "
                              "null for a figure that has no value")
    return json.dumps(card, allow_nan=False, **dumps_args)


def _non_finite_key(value: Any, key: str = "card") -> tuple[str, float] | None:
    """The key path and value of the first NaN or infinite float in ``value``, or None."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (key, value)
    if isinstance(value, Mapping):
        items = ((f"{key}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    else:
        return None
    return next((found for k, v in items if (found := _non_finite_key(v, k)) is not None),
                None)


def read_card(path: str | os.PathLike) -> dict[str, Any]:
    """The card of a checkpoint, read from its header alone (no tensors loaded)."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise CheckpointError(_not_safetensors(path, exc)) from None
    return _parse_card(meta, path)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu"
                    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(state_dict, card)`` of a checkpoint, tensors placed on ``device``."""
    from safetensors import safe_open

    path = _existing(path)
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            card = _parse_card(f.metadata() or {}, path)
            state = {name: f.get_tensor(name) for name in f.keys()}
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(_not_safetensors(path, exc)) from None
    broken = non_finite_tensors(state)
    if broken:
        raise CheckpointError(f"{path}: tensor {broken[0]!r} holds NaN or infinite values"
                              + (f" (and {len(broken) - 1} more tensors)" if len(broken) > 1
                                 else "") + "; the network would answer NaN")
    return state, card


def non_finite_tensors(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating or complex tensors of ``state`` holding NaN or infinity."""
    return [name for name, t in state.items()
            if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]


def convert_legacy(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Rewrite a pickle-based ``.pt`` checkpoint of this project as a safetensors one.

    The source is read with ``torch.load(weights_only=True)``, which only rebuilds
    tensors and plain containers; optimizer state is dropped.
    """
    src = _existing(src)
    try:
        old = torch.load(src, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{src}: not a plain-data torch file ({exc})") from None
    if not isinstance(old, dict) or "model_state" not in old or "model_config" not in old:
        raise CheckpointError(f"{src}: no model_state / model_config inside")
    card = {k: v for k, v in old.items()
            if k not in ("model_state", "optimizer_state", "scheduler_state", "rng_state",
                         "format")}
    return save_checkpoint(dest, old["model_state"], _json_ready(card, src))


def _existing(path: str | os.PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no MIST checkpoint at {path}")
    return path


def _not_safetensors(path: Path, exc: Exception) -> str:
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_PICKLE_MAGIC):
        return (f"{path} is a pickle-based torch file; MIST loads only safetensors "
                "checkpoints, because unpickling a file can run code. Convert a file you "
                f"trust with: python -m mistmodel.checkpoint convert {path} NEW.safetensors")
    return f"{path} is not a safetensors MIST checkpoint ({exc})"


def _parse_card(meta: Mapping[str, str], path: Path) -> dict[str, Any]:
    if CARD_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file without a MIST card "
                              f"(header metadata key {CARD_KEY!r})")
    try:
        card = json.loads(meta[CARD_KEY], object_pairs_hook=_object_without_repeats,
                          parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: its MIST card is not valid JSON ({exc})") from None
    except RecursionError:
        raise CheckpointError(f"{path}: its MIST card nests too deeply to read") from None
    except ValueError as exc:
        raise CheckpointError(f"{path}: its MIST card cannot be read: {exc}") from None
    _check_card(card, path)
    return card


def _no_constant(name: str) -> Any:
    """Refuse ``NaN``, ``Infinity`` and ``-Infinity``: no part of strict JSON."""
    raise ValueError(f"it holds {name}, which strict JSON does not allow")


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, refused if it repeats a key (JSON readers differ on which
    of the values they keep)."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"it repeats the key {key!r} in one object")
        seen[key] = value
    return seen


def _check_card(card: Any, path: Path) -> None:
    if not isinstance(card, dict):
        raise CheckpointError(f"{path}: the MIST card must be a JSON object")
    missing = [k for k in REQUIRED_CARD_KEYS if k not in card]
    if missing:
        raise CheckpointError(f"{path}: the MIST card lacks {', '.join(missing)}")
    if card["format"] != FORMAT:
        raise CheckpointError(f"{path}: checkpoint format {card['format']!r}, "
                              f"this version reads {FORMAT!r}")
    if not isinstance(card["model_config"], dict):
        raise CheckpointError(f"{path}: the card's model_config must be a JSON object")
    ranges = card.get("data_ranges")
    if ranges is not None:
        if not isinstance(ranges, dict):
            raise CheckpointError(f"{path}: the card's data_ranges must be a JSON object")
        for key, value in ranges.items():
            if not (isinstance(value, list) and len(value) == 2
                    and all(is_finite_number(v) for v in value) and value[0] <= value[1]):
                raise CheckpointError(f"{path}: the card's data_ranges[{key!r}] must be "
                                      f"[low, high] finite numbers with low <= high; got "
                                      f"{value!r}")
            if key in COUNT_RANGES and not all(float(v).is_integer() and v >= COUNT_RANGES[key]
                                               for v in value):
                raise CheckpointError(f"{path}: the card's data_ranges[{key!r}] must be whole "
                                      f"numbers >= {COUNT_RANGES[key]}; got {value!r}")
    ceiling = card.get("mi_ceiling")
    if ceiling is not None and not is_mi_ceiling(ceiling):
        raise CheckpointError(
            f"{path}: the card's mi_ceiling must map consecutive widths (\"1\", \"2\", ...) "
            f"to non-decreasing finite numbers of nats, none negative; got {ceiling!r}")
    calibration = card.get("interval_calibration")
    problem = None if calibration is None else calibration_problem(calibration)
    if problem:
        raise CheckpointError(f"{path}: the card's interval_calibration {problem}")


def is_mi_ceiling(ceiling: Any) -> bool:
    """Whether ``ceiling`` is a card's ``mi_ceiling``: consecutive positive widths, as
    strings (``"1"``, ``"2"``, ...), mapped to non-decreasing finite numbers >= 0."""
    if not isinstance(ceiling, dict) or not ceiling:
        return False
    if not all(isinstance(k, str) and re.fullmatch(r"[1-9][0-9]{0,5}", k) for k in ceiling):
        return False
    widths = sorted(int(k) for k in ceiling)      # JSON may hold them in any order
    tops = [ceiling[str(w)] for w in widths]
    return (widths == list(range(widths[0], widths[0] + len(widths)))
            and all(is_finite_number(v) and v >= 0 for v in tops)
            and all(a <= b for a, b in zip(tops, tops[1:])))


def _json_ready(value: Any, src: Path) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_ready(v, src) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v, src) for v in value]
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise CheckpointError(f"{src}: cannot store a {type(value).__name__} in a JSON card")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "convert":
        print("usage: python -m mistmodel.checkpoint convert OLD.pt NEW.safetensors",
              file=sys.stderr)
        return 2
    try:
        out = convert_legacy(args[1], args[2])
    except (CheckpointError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
