"""The ``"simd"`` backend: the network's per-cell layers as hand-written AVX2 kernels.

The network's time goes into layers that apply the same chain of small operations to
every cell of the sample matrix.  This backend computes the same formulas from the
network's own modules and weights (it reads them, never changes them), arranged so that
each chain is one pass over memory in C (:mod:`._simd_ops`):

* **score lookup.**  After the copula a sample of ``n`` rows holds at most ``2 n - 1``
  distinct cell values.  The embedding and everything the first column attention
  computes from a cell alone (layer norm, queries, keys, values, gate) run once per
  distinct value of the batch (``numpy.unique`` of the bit patterns) and are read by
  index; later column attentions index their cells one to one;
* **column attention**: the row sums of query-key products (:func:`column_moments`; in
  torch where the head width is not 8) and every cell's mixed, gated update
  (:func:`column_mix`), straight from those tables;
* **row attention**: the inducing points read each column (:func:`read_columns`) and
  every cell reads them back and passes the feed-forward layer (:func:`update_cells`);
  the pooling seed reads each column with :func:`read_columns` too.  Layer norms that
  feed a linear map have their scale and shift folded into that map, and the projections
  of learned queries into the keys they meet.

The sample statistics, the small layers on column summaries and the head run in torch,
in the network's own modules.  Results equal the ``"torch"`` backend's up to float32
rounding (about 1e-6 nats).

Where the kernels cannot compute the network - the extension not compiled, a CPU without
AVX2 and FMA, a network not on CPU in float32, or an architecture other than the one the
kernels implement (see :func:`unsupported_reason`) - the backend warns once
(:class:`SimdUnavailableWarning`) and runs the ``"torch"`` backend instead.  Calls with
inputs the kernels do not take (not float32 CPU tensors, or more heads x columns than
they hold) run the ``"torch"`` backend too, silently: the result is the same function.

``threads``: the kernels split their work over that many threads of their own pool
(``None``: torch's current thread count).  With ``threads=T`` the torch operations
between them, which are small, run on one torch thread: torch's thread count is 1 for
the duration of the call and restored exactly afterwards, also when the call raises (as
the ``"torch"`` backend does with its ``threads``); waking torch's thread team for each
small operation costs more than it saves.  With ``threads=None`` they run on torch's
thread count as the caller left it, which the call does not change: a thread that starts
using torch meanwhile takes the caller's count, not 1.

A pickled or copied backend checks again whether the kernels can run the network where
it is unpickled; where they cannot it runs ``"torch"``, with the warning a new backend
gives (none for one that ``"auto"`` chose).
"""
from __future__ import annotations


import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..caller_warnings import warn
from ..model import (X_COLUMN, Y_COLUMN, ColumnEmbedding, ColumnSetAttention,
                     CorrelationBias, FeedForward, InducedRowAttention, LearnedQueryReader,
                     MISTNet, PairReadout, PoolingByAttention, TiedColumnAttention)
from ..threads import torch_threads
from . import _simd_ops as ops
from . import check_threads
from .eager import TorchBackend

__all__ = ["SimdBackend", "SimdUnavailableWarning", "unsupported_reason"]


class SimdUnavailableWarning(UserWarning):
    """The ``"simd"`` backend cannot run this network here and runs ``"torch"`` instead."""


def unsupported_reason(network: nn.Module) -> str | None:
    """Why the kernels cannot compute ``network`` here, or None when they can."""
    reason = ops.unavailable_reason()
    if reason is not None:
        return reason
    if type(network) is not MISTNet:
        return f"the network is a {type(network).__name__}, not a MISTNet"
    params = list(network.parameters())
    if any(p.device.type != "cpu" for p in params):
        return "the network is not on the CPU"
    if any(p.dtype != torch.float32 for p in params):
        return "the network's parameters are not float32"
    config = network.config
    if config.conditional:
        return "the kernels compute the X/Y network only, not a conditional (X/Y/Z) one"
    c, H, limits = config.width, config.heads, ops.LIMITS
    if c % 8 or c > limits["max_c"]:
        return f"cell width {c} is not a multiple of 8 up to {limits['max_c']}"
    if H * max(config.inducing, 1) > limits["max_j"]:
        return f"heads x inducing points {H} x {config.inducing} exceed {limits['max_j']}"
    if config.ffn_mult * c > limits["max_f"]:
        return f"feed-forward width {config.ffn_mult * c} exceeds {limits['max_f']}"
    expected = [("embed", network.embed, ColumnEmbedding),
                ("row_pool", network.row_pool, PoolingByAttention),
                ("row_pool.read", network.row_pool.read, LearnedQueryReader),
                ("col_set", network.col_set, ColumnSetAttention),
                ("pairs", network.pairs, PairReadout)]
    expected += [(f"col_bias.{i}", m, CorrelationBias) for i, m in enumerate(network.col_bias)]
    expected += [(f"col_att.{i}", m, TiedColumnAttention) for i, m in enumerate(network.col_att)]
    for i, row in enumerate(network.row_att):
        expected += [(f"row_att.{i}", row, InducedRowAttention),
                     (f"row_att.{i}.read", row.read, LearnedQueryReader),
                     (f"row_att.{i}.ffn", row.ffn, FeedForward)]
    for name, module, kind in expected:
        if type(module) is not kind:
            return f"module {name} is a {type(module).__name__}, not a {kind.__name__}"
    if len(network.col_att) != config.blocks or len(network.row_att) != config.blocks:
        return f"the network does not hold {config.blocks} column and row attention blocks"
    for name, module in network.named_modules():
        if isinstance(module, nn.LayerNorm) and (
                type(module) is not nn.LayerNorm or len(module.normalized_shape) != 1
                or module.weight is None or module.bias is None):
            return f"{name} is not a LayerNorm over the last axis with scale and shift"
    # the linear maps whose weights the backend folds and reads directly
    readers = {"row_pool.read": network.row_pool.read}
    folded = {}
    for i, row in enumerate(network.row_att):
        if [type(m) for m in row.ffn.net] != [nn.Linear, nn.SiLU, nn.Linear]:
            return f"row_att.{i}.ffn is not Linear -> SiLU -> Linear"
        readers[f"row_att.{i}.read"] = row.read
        folded.update({f"row_att.{i}.{part}": getattr(row, part) for part in ("q", "out")})
        folded.update({f"row_att.{i}.ffn.net.{j}": row.ffn.net[j] for j in (0, 2)})
    for prefix, reader in readers.items():
        folded.update({f"{prefix}.{part}": getattr(reader, part) for part in ("k", "v")})
    for name, module in folded.items():
        if type(module) is not nn.Linear or module.bias is None:
            return f"{name} is not an nn.Linear with a bias"
    return None


def fold_layer_norm(norm: nn.LayerNorm, weight: Tensor, bias: Tensor) -> tuple[Tensor, Tensor]:
    """A linear map ``(weight, bias)`` applied after ``norm``'s scale and shift, as one map
    applied before them: ``W (g * x + b) + c = (W diag g) x + (W b + c)``."""
    return weight * norm.weight, weight @ norm.bias + bias


class SimdBackend:
    """The network's forward pass with its per-cell layers in the SIMD kernels (see the
    module docstring); the ``"torch"`` backend where they cannot run it (``reason``
    says why; None when they run it)."""

    def __init__(self, network: nn.Module, threads: int | None = None, auto: bool = False):
        self.network = network
        self.threads = check_threads(threads)
        self.fallback = TorchBackend(network, threads=threads)
        self.auto = auto                # chosen by "auto": runs "torch" without a warning
        self._check_kernels()

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.auto = state.get("auto", False)
        self._check_kernels()           # the kernels may not run where it is unpickled

    def _check_kernels(self) -> None:
        self.reason = unsupported_reason(self.network)
        if self.reason is not None and not self.auto:
            warn(f"the 'simd' backend cannot run this network ({self.reason}); "
                 "running the 'torch' backend instead", SimdUnavailableWarning)

    @property
    def name(self) -> str:
        """``"simd"``, or ``"torch"`` where the kernels cannot run the network here."""
        return "simd" if self.reason is None else "torch"

    def __call__(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor,
                 tau: Tensor | None = None) -> Tensor:
        D = values.shape[-1] if values.dim() == 3 else 0
        if (self.reason is not None or values.dtype != torch.float32
                or values.device.type != "cpu"
                or self.network.config.heads * D > ops.LIMITS["max_hd"]):
            return self.fallback(values, row_mask, col_mask, col_type, tau)
        net = self.network
        threads = self.threads or torch.get_num_threads()
        # the kernels on ``threads``; torch's steps (statistics, summaries, head) on one
        # thread where ``threads`` is given (restored after), else as the caller left it
        with torch_threads(None if self.threads is None else 1), torch.inference_mode():
            corr, feats = net.statistics(values, row_mask, col_mask, col_type)
            emb = self._embed_dataset(values, row_mask.bool().contiguous(), col_mask.bool(),
                                      col_type.long(), corr, feats, threads)
            return net.predict(emb, tau)

    # ----------------------------------------------------------------------------------
    # MISTNet.embed_dataset, re-expressed for the kernels
    # ----------------------------------------------------------------------------------

    def _embed_dataset(self, values: Tensor, row_mask: Tensor, col_mask: Tensor,
                       col_type: Tensor, corr: Tensor, feats: Tensor, threads: int) -> Tensor:
        net = self.network
        use_stats = net.config.stats_features
        corr_or_none = corr if use_stats else None
        n = row_mask.sum(1)                                                   # (B,)
        real = row_mask[:, :, None] & col_mask[:, None, :]                    # (B, N, D)
        table_cells, index = self._embed_table(values * real, col_type)      # (E, c), (B, D, N)
        B, D, N = index.shape
        moments, cells = [], None
        for bias, col_att, row_att in zip(net.col_bias, net.col_att, net.row_att):
            if cells is not None:                # later blocks: cells index themselves
                table_cells = cells.reshape(B * D * N, -1)
                index = torch.arange(B * D * N).view(B, D, N)
            cells, mom = self._column_attention(col_att, table_cells, index, row_mask,
                                                col_mask, bias(corr_or_none, col_type), n,
                                                threads)
            moments.append(mom)
            cells = self._row_attention(row_att, cells, row_mask, threads)
        if cells is None:                        # no blocks
            cells = F.embedding(index, table_cells)
        pool = net.row_pool
        read = self._read(pool.read, cells, row_mask, pool.seed, pool.norm, threads)
        cols = pool.proj((pool.seed + read).squeeze(2))                       # (B, D, s)
        return net.summarize_columns(cols, moments, col_mask, col_type, corr, feats)

    def _embed_table(self, masked: Tensor, col_type: Tensor) -> tuple[Tensor, Tensor]:
        """The embedded distinct cell values ``(2 T, c)`` (as X cells, then as Y cells) and
        each cell's row in it ``(B, D, N)``: ``embed(masked)[b, d, r] == table[index[b, d, r]]``."""
        # distinct bit patterns: an integer sort is several times faster than a float one,
        # and numpy's unique about 2.5x faster than torch's on CPU
        bits = masked.transpose(1, 2).contiguous().view(torch.int32)          # (B, D, N)
        table_bits, inverse = np.unique(bits.numpy(), return_inverse=True)
        table = torch.from_numpy(table_bits).view(torch.float32)              # (T,)
        index = torch.from_numpy(inverse.reshape(bits.shape))                # (B, D, N)
        T = table.shape[0]
        as_x_and_y = table[:, None].expand(T, 2)[None]                        # (1, T, 2)
        tags = torch.tensor([[X_COLUMN, Y_COLUMN]])
        table_cells = self.network.embed(as_x_and_y, tags).reshape(2 * T, -1)  # (2T, c)
        return table_cells, index + col_type[:, :, None] * T

    def _column_attention(self, att: TiedColumnAttention, table_cells: Tensor, index: Tensor,
                          row_mask: Tensor, col_mask: Tensor, bias: Tensor, n: Tensor,
                          threads: int) -> tuple[Tensor, Tensor]:
        """:class:`TiedColumnAttention` of the cells ``table_cells[index]``, with the
        per-cell work done once per table entry: table_cells ``(E, c)``, index ``(B, D, N)``."""
        E, c = table_cells.shape
        B, D, N = index.shape
        H = att.heads
        e = c // H
        h = att.norm(table_cells)
        q, k = att.qk(h).view(E, 2, H, e).unbind(1)                           # (E, H, e)
        v = att.value(h).view(E, H, c)                                        # (E, H, c)
        one_plus_gate = att.gate(h) + 1.0                                     # (E, c)
        base = table_cells + att.out_bias
        if e == 8:
            sums = ops.column_moments(index, row_mask, q.contiguous(), k.contiguous(), threads)
        else:                                   # a head width the kernel does not hold
            masked_q = q[index] * row_mask[:, None, :, None, None].to(q.dtype)  # (B, D, N, H, e)
            sums = torch.einsum("binhe,bjnhe->bhij", masked_q, k[index])       # (B, H, D, D)
        moments = sums / (n.to(sums.dtype) * e ** 0.5)[:, None, None, None]  # (B, H, D, D)
        logits = (moments + bias).masked_fill(~col_mask[:, None, None, :], float("-inf"))
        side_by_side = torch.softmax(logits, dim=-1).transpose(1, 2).reshape(B, D, H * D)
        cells = ops.column_mix(index, side_by_side.contiguous(), v.contiguous(),
                               one_plus_gate.contiguous(), base.contiguous(), threads)
        return cells, moments

    def _read(self, reader: LearnedQueryReader, cells: Tensor, row_mask: Tensor,
              queries: Tensor, norm: nn.LayerNorm, threads: int) -> Tensor:
        """``reader(norm(cells), row_mask, queries)``: ``(B, D, Q, c)``.  The key map and
        the queries are folded into ``(H Q, c)`` vectors that meet ``LN(cells)`` (the norm
        without scale and shift, which go into the maps; the key bias is constant over the
        rows and cancels) and the value map is applied after pooling."""
        B, D, N, c = cells.shape
        Q, H = queries.shape[0], reader.heads
        e = c // H
        wk = reader.k.weight * norm.weight
        wv, bv = fold_layer_norm(norm, reader.v.weight, reader.v.bias)
        q = reader.q(queries).view(Q, H, e)
        folded = torch.einsum("hec,qhe->hqc", wk.view(H, e, c), q).reshape(H * Q, c)
        pooled = ops.read_columns(cells, row_mask, folded * (e ** -0.5 * ops.LOG2E),
                                  norm.eps, threads)
        if pooled is None:                       # scores too spread for the kernel's shift
            return reader(norm(cells), row_mask, queries)
        pooled = pooled.view(B, D, H, Q, c)
        vals = torch.einsum("bdhqc,hec->bdqhe", pooled, wv.view(H, e, c)) + bv.view(H, e)
        return reader.out(vals.reshape(B, D, Q, c))

    def _row_attention(self, layer: InducedRowAttention, cells: Tensor, row_mask: Tensor,
                       threads: int) -> Tensor:
        """:class:`InducedRowAttention`: the inducing points read the column, then every
        cell reads them (the query map and the norm folded into the keys, the output map
        into the values) and passes the feed-forward layer, in one kernel."""
        B, D, N, c = cells.shape
        H = layer.heads
        e, m = c // H, layer.inducing.shape[0]
        read = self._read(layer.read, cells, row_mask, layer.inducing, layer.norm, threads)
        induced = layer.induced_ffn(layer.inducing + read)                    # (B, D, m, c)
        k, v = layer.kv(layer.norm_induced(induced)).view(B, D, m, 2, H, e).unbind(3)
        wq, bq = fold_layer_norm(layer.norm, layer.q.weight, layer.q.bias)
        keys = torch.einsum("hec,bdmhe->bdhmc", wq.view(H, e, c), k)          # (B, D, H, m, c)
        key_bias = torch.einsum("he,bdmhe->bdhm", bq.view(H, e), k)           # (B, D, H, m)
        # each head's weights sum to 1 over its m keys, so the output bias rides on the values
        vals = (torch.einsum("bdmhe,che->bdhmc", v, layer.out.weight.view(c, H, e))
                + layer.out.bias / H)                                         # (B, D, H, m, c)
        scale = e ** -0.5 * ops.LOG2E                                         # base-2 scores
        ffn = layer.ffn
        w1, b1 = fold_layer_norm(ffn.norm, ffn.net[0].weight, ffn.net[0].bias)
        return ops.update_cells(
            cells, (keys * scale).reshape(B, D, H * m, c),
            (key_bias * scale).reshape(B, D, H * m),
            vals.reshape(B, D, H * m, c).transpose(2, 3).contiguous(), H, layer.norm.eps,
            w1, b1, ffn.net[2].weight, ffn.net[2].bias, ffn.norm.eps, threads)
