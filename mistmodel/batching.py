"""From samples to padded tensors, and from a stream of samples to shape-bucketed batches.

A batch holds samples of different ``n``, ``dim_x`` and ``dim_y``.  Each sample's columns
are laid out as its X columns followed by its Y columns (and, for conditional MI, its Z
columns), then padded with zero columns up to the widest sample of the batch; rows are
padded with zero rows.  Masks mark what is real, and ``col_type`` tags each column as
X (0), Y (1) or Z (2).  Sorting samples by shape before
cutting batches (bucketing) keeps the padding small.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch

from . import orientation
from .copula import row_score_index, score_table, standardize

__all__ = ["Batch", "collate", "bucket_batches", "shape_key", "plan_chunks"]


@dataclass
class Batch:
    values: torch.Tensor      # (B, N, D) float32, normalised, zero where padded
    row_mask: torch.Tensor    # (B, N) bool
    col_mask: torch.Tensor    # (B, D) bool
    col_type: torch.Tensor    # (B, D) long: 0 = X column, 1 = Y column, 2 = Z column
    target: torch.Tensor | None = None   # (B,) float32 true MI, when known
    n: torch.Tensor | None = None        # (B,) long rows per sample

    def to(self, device: torch.device | str) -> "Batch":
        move = (lambda t: None if t is None else t.to(device, non_blocking=True))
        return Batch(move(self.values), move(self.row_mask), move(self.col_mask),
                     move(self.col_type), move(self.target), move(self.n))

    def __len__(self) -> int:
        return self.values.shape[0]

    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.values, self.row_mask, self.col_mask, self.col_type


def collate(samples: Sequence[tuple[np.ndarray, ...]],
            targets: Sequence[float] | None = None, copula: bool = True,
            normalized: bool = False, orient: bool = False) -> Batch:
    """Pad a list of ``(x, y)`` pairs (or ``(x, y, z)`` triples) into one :class:`Batch`.

    ``x``: ``(n, dim_x)``, ``y``: ``(n, dim_y)``, ``z``: ``(n, dim_z)``; each sample is
    normalised per column (normal scores if ``copula``) before padding unless
    ``normalized`` says it already is.  Group ``g`` of a sample is tagged ``g``.
    ``orient`` flips the columns of each ``(x, y)`` pair whose dependence reads as negative
    (:mod:`mistmodel.orientation`); triples stay as they are.
    """
    if not samples:
        raise ValueError("cannot collate an empty list of samples")
    shapes = [(parts[0].shape[0],) + tuple(a.shape[1] for a in parts) for parts in samples]
    N = max(s[0] for s in shapes)
    D = max(sum(s[1:]) for s in shapes)
    B = len(samples)
    row_mask = np.zeros((B, N), dtype=bool)
    col_mask = np.zeros((B, D), dtype=bool)
    col_type = np.zeros((B, D), dtype=np.int64)
    if copula and not normalized:
        values = _normal_scores(samples, shapes, N, D)
    else:
        values = np.zeros((B, N, D), dtype=np.float32)
    for b, (parts, (n, *dims)) in enumerate(zip(samples, shapes)):
        start = 0
        for tag, (part, d) in enumerate(zip(parts, dims)):
            if normalized:
                values[b, :n, start:start + d] = part
            elif not copula:
                values[b, :n, start:start + d] = standardize(part)
            col_type[b, start:start + d] = tag
            start += d
        row_mask[b, :n] = True
        col_mask[b, :start] = True
        if orient and len(dims) == 2:
            orientation.orient(values[b], n, *dims)
    target = None if targets is None else torch.as_tensor(np.asarray(targets, dtype=np.float32))
    return Batch(torch.from_numpy(values), torch.from_numpy(row_mask), torch.from_numpy(col_mask),
                 torch.from_numpy(col_type), target,
                 torch.as_tensor([s[0] for s in shapes], dtype=torch.long))


def _normal_scores(samples: Sequence[tuple[np.ndarray, ...]],
                   shapes: Sequence[tuple[int, ...]], N: int, D: int) -> np.ndarray:
    """Normal scores of every column, padded: ``(B, N, D)`` float32, 0 where padded.

    The columns of all samples with the same ``n`` (and dtype) are ranked in one call,
    as positions in one table of the possible scores (:func:`~mistmodel.copula.score_table`
    of each ``n``, after a 0.0 for the padding), which is then read at those positions.
    """
    offsets: dict[int, int] = {}
    blocks = [np.zeros(1, dtype=np.float32)]
    size = 1
    for n in sorted({s[0] for s in shapes}):
        offsets[n] = size
        blocks.append(score_table(n))
        size += 2 * n - 1
    groups: dict[tuple[int, np.dtype], list[tuple[int, int, np.ndarray]]] = {}
    for b, (parts, (n, *dims)) in enumerate(zip(samples, shapes)):
        starts = np.concatenate([[0], np.cumsum(dims)[:-1]])
        for start, part in zip(starts, parts):
            part = np.asarray(part)
            groups.setdefault((n, part.dtype), []).append((b, int(start), part))
    index = np.zeros((len(samples), D, N), dtype=np.int64)
    for (n, _), parts in groups.items():
        ranked = row_score_index(np.concatenate([part.T for _, _, part in parts]))  # (d, n)
        ranked += offsets[n]
        row = 0
        for b, start, part in parts:
            d = part.shape[1]
            index[b, start:start + d, :n] = ranked[row:row + d]
            row += d
    table = np.concatenate(blocks)
    return np.ascontiguousarray(table[index].transpose(0, 2, 1))


def shape_key(n: int, dim_x: int, dim_y: int) -> tuple[int, int]:
    """Sort key that groups samples with similar padded size (columns first, then rows)."""
    return (dim_x + dim_y, n)


def plan_chunks(shapes: Sequence[tuple[int, int, int]], max_cells: int,
                max_batch: int, max_waste: float = 2.0) -> list[list[int]]:
    """Split sample indices, sorted by shape, into chunks whose padded size is bounded.

    A chunk's padded cell count ``len(chunk) * max_n * max_D`` stays within ``max_cells``
    and within ``max_waste`` times its real cell count (a chunk always holds at least one
    sample), and a chunk holds at most ``max_batch`` samples.
    """
    order = sorted(range(len(shapes)), key=lambda i: shape_key(*shapes[i]))
    chunks: list[list[int]] = []
    current: list[int] = []
    max_n = max_d = real = 0
    for i in order:
        n, dx, dy = shapes[i]
        new_n, new_d = max(max_n, n), max(max_d, dx + dy)
        padded = (len(current) + 1) * new_n * new_d
        if current and (padded > max_cells or len(current) >= max_batch
                        or padded > max_waste * (real + n * (dx + dy))):
            chunks.append(current)
            current, new_n, new_d, real = [], n, dx + dy, 0
        current.append(i)
        real += n * (dx + dy)
        max_n, max_d = new_n, new_d
    if current:
        chunks.append(current)
    return chunks


def bucket_batches(samples: Sequence, rng: np.random.Generator, batch_size: int,
                   max_cells: int) -> Iterator[list]:
    """Yield lists of samples: shuffled, sorted by shape, cut into batches, batches shuffled.

    ``samples`` are objects with ``.x`` and ``.y`` (and ``.z``, counted with ``y``, in
    conditional samples).  Batches hold at most ``batch_size`` samples and at most
    ``max_cells`` padded cells.
    """
    idx = rng.permutation(len(samples))
    items = [samples[i] for i in idx]
    shapes = [(s.x.shape[0], s.x.shape[1],
               s.y.shape[1] + (s.z.shape[1] if hasattr(s, "z") else 0)) for s in items]
    chunks = plan_chunks(shapes, max_cells=max_cells, max_batch=batch_size)
    for k in rng.permutation(len(chunks)):
        yield [items[i] for i in chunks[k]]


def iter_buffered(shards: Iterable[list], buffer_shards: int) -> Iterator[list]:
    """Group a stream of shards into buffers of ``buffer_shards`` shards (lists of samples)."""
    buf: list = []
    count = 0
    for shard in shards:
        buf.extend(shard)
        count += 1
        if count >= buffer_shards:
            yield buf
            buf, count = [], 0
    if buf:
        yield buf
