"""The MIST network: 2D attention over a sample matrix, pooled to one number.

A sample of ``n`` rows ``(x_r, y_r)`` with ``dim_x + dim_y = D`` columns is a matrix of
``n x D`` cells.  Every cell gets its own vector of width ``c``, stored column-major as a
tensor ``(B, D, N, c)``, and the network attends along both axes of the matrix,
alternating

* **column attention** (:class:`TiedColumnAttention`) - within each row, every cell
  attends to the cells of the other columns of that row.  Columns are tagged X or Y and
  carry no other position, so permuting columns within X or within Y only permutes cells.
  The attention map over columns is *tied* across rows (as in the MSA Transformer's tied
  row attention): its logits are the row-average of the per-row query-key products, plus
  a learned function of the columns' correlation.  The values mixed are per row, so a
  cell does see what the other columns hold in its own row.  Tying makes the map
  statistically stable at small ``n`` and turns the whole layer into a few dense matrix
  products (``O(n D^2 c)`` multiply-adds, no per-row softmax);
* **induced row attention** (:class:`InducedRowAttention`) - within each column, across
  its ``n`` cells, through ``m`` learned inducing points (the ISAB of the Set
  Transformer): the inducing points read the column, then every cell reads the inducing
  points.  Cost ``O(n D m c)``: linear in ``n``.

Then the cells of each column are pooled over rows (:class:`PoolingByAttention`), the
column summaries attend to one another once more (:class:`ColumnSetAttention`) and are
pooled over columns (masked sums and means, separately for X and Y).  Beside them, the
row-averaged query-key products of the column attention - learned cross-moments of every
pair of columns - are read out pair by pair and summed over pairs (:class:`PairReadout`):
dependence lives between columns, and after the copula every column has the same
marginal, so these pair terms carry the signal from the first training step on.  A small
head maps the dataset embedding to the output:

* ``variant="mist"``: one number, ``softplus`` so that the estimate is >= 0 (nats)
  (:class:`PointHead`);
* ``variant="mist_qr"``: quantiles of I(X;Y) at any ``tau`` (:class:`QuantileHead`).  The
  head predicts a knot value at the lowest point of a fixed tau grid plus ``softplus``
  increments between consecutive knots; a quantile at ``tau`` is the linear interpolation
  of the knots.  Increments are positive, so quantiles are non-decreasing in ``tau`` by
  construction and never cross.

Two exactly invariant statistics of the (normal-scores) sample are also given to the
network (:class:`SampleStatistics`), because they are cheap and carry the Gaussian part of
the dependence: the column correlation matrix ``C`` (a learned per-head bias of every
column-attention map) and the Gaussian-copula MI ``0.5 (logdet C_XX + logdet C_YY -
logdet C)`` at two shrinkage levels (fed to the head next to ``log n``, ``log dim_x``,
``log dim_y``).  ``stats_features=False`` turns both off.

Invariances, exact up to floating-point rounding:

* rows: every operation across rows is a masked attention, a masked softmax-weighted sum
  or a masked mean;
* columns within X / within Y: no column positions, only the X/Y tag; every operation
  across columns is attention or a masked pool;
* padding: padded rows and columns are masked out of every softmax, sum and mean, and
  there are no batch statistics (LayerNorm acts on one cell at a time).

Attention layers whose queries are learned parameters (the inducing points, the pooling
seed) or whose keys are few (the inducing points) are written with the projections folded
into the query/key side, which is algebraically the usual multi-head attention but keeps
every per-cell operation a dense matrix product over contiguous memory.

After the copula a sample of ``n`` rows holds at most ``2 n - 1`` distinct cell values
(the normal scores of the possible average ranks).  Given the batch's table of those
values and each cell's position in it (:class:`~mistmodel.batching.ScoreLookup`), the
embedding and everything the first column attention computes from a cell alone (layer
norm, queries, keys, values, gate) run once per table entry and are gathered into the
cells: the same function, a fraction of the work (:meth:`MISTNet.embed_dataset`).

At CPU inference the column attention (from the tables), the row attention and the
pooling's read run as compiled kernels where they are available (:mod:`mistmodel.kernels`:
the same formulas, each layer's chain of operations in one pass over the cells); the
torch code here is their reference and the training path.

Shapes in comments: ``B`` batch, ``N`` rows (padded), ``D`` columns (padded), ``H``
heads, ``e = c / H`` head width, ``m`` inducing points, ``T`` taus, ``K`` quantile knots.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import kernels
from .fused import LOG2E, centre_and_scale, layer_norm, linear, softmax_base2

if TYPE_CHECKING:
    from .batching import ScoreLookup

__all__ = [
    "ModelConfig",
    "MISTNet",
    "ColumnEmbedding",
    "CorrelationBias",
    "TiedColumnAttention",
    "LearnedQueryReader",
    "InducedRowAttention",
    "PoolingByAttention",
    "ColumnSetAttention",
    "PairReadout",
    "SampleStatistics",
    "PointHead",
    "QuantileHead",
    "interpolate_quantiles",
    "pinball_loss",
    "count_parameters",
]

X_COLUMN, Y_COLUMN = 0, 1
NEG_INF = float("-inf")


def config_from_dict(cls: Any, d: dict[str, Any], what: str) -> Any:
    """``cls(**d)`` for a config dataclass, naming any key it does not know."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    return cls(**d)


@dataclass
class ModelConfig:
    """Hyperparameters of :class:`MISTNet`."""

    variant: str = "mist"          # "mist" (point estimate) or "mist_qr" (quantiles)
    width: int = 16                 # c: width of a cell vector
    heads: int = 2                  # attention heads (width must be divisible by heads)
    blocks: int = 1                 # (column attention, induced row attention) pairs
    inducing: int = 8               # m: inducing points per row attention
    ffn_mult: int = 2               # hidden width of feed-forward layers, in units of c
    summary_width: int = 64         # width of column summaries after pooling over rows
    pair_width: int = 32            # width of the column-pair readout
    head_hidden: int = 128          # hidden width of the output head
    quantile_knots: int = 41        # knots of the tau grid (mist_qr)
    tau_min: float = 0.01           # lowest knot
    tau_max: float = 0.99           # highest knot
    copula: bool = True             # normal-scores normalisation of the input columns
    stats_features: bool = True     # correlation bias + Gaussian-copula MI features

    def __post_init__(self) -> None:
        if self.variant not in ("mist", "mist_qr"):
            raise ValueError(f"variant must be 'mist' or 'mist_qr', got {self.variant!r}")
        if self.width % self.heads or self.summary_width % self.heads:
            raise ValueError(f"width {self.width} and summary_width {self.summary_width} "
                             f"must be divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return config_from_dict(cls, d, "model")


# --------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------

def masked_attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None,
                     bias: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention with an optional boolean key mask and additive bias.

    ``q``: ``(..., Lq, e)``; ``k``, ``v``: ``(..., Lk, e)``; ``key_mask`` (True = may be
    attended) and ``bias`` broadcast to ``(..., Lq, Lk)``.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)   # (..., Lq, Lk)
    if bias is not None:
        scores = scores + bias
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, NEG_INF)
    return torch.matmul(torch.softmax(scores, dim=-1), v)                   # (..., Lq, e)


def fold_layer_norm(norm: nn.LayerNorm, weight: Tensor, bias: Tensor | None
                    ) -> tuple[Tensor, Tensor]:
    """A linear map ``(weight, bias)`` applied after ``norm``'s scale and shift, as one map
    applied before them: ``W (g * x + b) + c = (W diag g) x + (W b + c)``."""
    folded_bias = weight @ norm.bias
    return weight * norm.weight, folded_bias if bias is None else folded_bias + bias


class FeedForward(nn.Module):
    """Pre-norm position-wise MLP with a residual connection: ``x + W2 silu(W1 LN(x))``.
    The norm's scale and shift are folded into ``W1``."""

    def __init__(self, width: int, mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.net = nn.Sequential(nn.Linear(width, mult * width), nn.SiLU(),
                                 nn.Linear(mult * width, width))

    def folded(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(W1, b1, W2, b2)`` with the norm's scale and shift folded into ``W1, b1``:
        ``FFN(x) = x + W2 silu(W1 (x - mean) / sqrt(var + eps) + b1) + b2``."""
        inner, _, outer = self.net
        w1, b1 = fold_layer_norm(self.norm, inner.weight, inner.bias)
        return w1, b1, outer.weight, outer.bias

    def forward(self, x: Tensor) -> Tensor:
        w1, b1, w2, b2 = self.folded()
        hidden = linear(layer_norm(x, self.norm, affine=False), w1, b1, act="silu")
        return linear(hidden, w2, b2).add_(x)


# --------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------

class ColumnEmbedding(nn.Module):
    """Cell value -> vector of width c, plus a learned tag: X column or Y column.

    values ``(B, N, D)``, col_type ``(B, D)`` -> cells ``(B, D, N, c)`` (column-major).
    """

    def __init__(self, width: int):
        super().__init__()
        self.value = nn.Sequential(nn.Linear(1, width), nn.SiLU(), nn.Linear(width, width))
        self.tag = nn.Embedding(2, width)
        nn.init.normal_(self.tag.weight, std=0.1)    # the value, not the tag, dominates a cell

    def forward(self, values: Tensor, col_type: Tensor) -> Tensor:
        first, _, second = self.value
        cells = linear(values.transpose(1, 2).unsqueeze(-1), first.weight, first.bias, act="silu")
        cells = linear(cells, second.weight, second.bias)            # (B, D, N, c)
        return cells.add_(self.tag(col_type)[:, :, None, :])         # + (B, D, 1, c)


class CorrelationBias(nn.Module):
    """Per-head attention bias between columns from their correlation and their tags.

    ``bias[b, h, i, j] = a_h C_ij + q_h C_ij^2 + t_h[type_i, type_j]`` -> ``(B, H, D, D)``.
    """

    def __init__(self, heads: int):
        super().__init__()
        self.lin = nn.Parameter(torch.zeros(heads))
        self.quad = nn.Parameter(torch.zeros(heads))
        self.pair = nn.Parameter(torch.zeros(heads, 2, 2))

    def forward(self, corr: Tensor | None, col_type: Tensor) -> Tensor:
        pair = self.pair[:, col_type[:, :, None], col_type[:, None, :]]  # (H, B, D, D)
        bias = pair.transpose(0, 1)                                      # (B, H, D, D)
        if corr is not None:
            c = corr[:, None]                                            # (B, 1, D, D)
            bias = bias + self.lin[:, None, None] * c + self.quad[:, None, None] * c * c
        return bias


class CellProjections(NamedTuple):
    """Per-cell inputs of :class:`TiedColumnAttention`, heads first: ``q``, ``k``
    ``(B, H, D, N, e)``, ``v`` (``W_o,h v_h``) ``(B, H, D, N, c)`` and ``1 + gate``
    ``(B, D, N, c)``."""

    q: Tensor
    k: Tensor
    v: Tensor
    one_plus_gate: Tensor


class TiedColumnAttention(nn.Module):
    """Attention across the columns of each row, with the map tied across rows.

    For head h, ``A_h[i, j] = softmax_j( mean_r <q_h(cell_ri), k_h(cell_rj)> / sqrt(e)
    + bias_h[i, j] )`` over valid columns j, and
    ``cell_ri <- cell_ri + sum_h sum_j A_h[i, j] W_o,h v_h(cell_rj)``.  The output
    projection is folded into the per-head values.  There is no feed-forward layer here:
    the row attention that always follows has one.

    cells ``(B, D, N, c)``; row_mask ``(B, N)``; col_mask ``(B, D)``; bias ``(B, H, D, D)``;
    n ``(B,)`` valid rows -> cells ``(B, D, N, c)`` and the row-averaged query-key
    products ``(B, H, D, D)`` (learned cross-moments of column pairs, read by
    :class:`PairReadout`).  The mixed values also multiply a gate of the receiving cell,
    so that products of a cell with its partners appear from the first layer on.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.qk = nn.Linear(width, 2 * width)                # q and k for all heads
        self.value = nn.Linear(width, heads * width, bias=False)  # W_o,h v_h for each head
        self.out_bias = nn.Parameter(torch.zeros(width))
        self.gate = nn.Linear(width, width)                 # multiplicative interaction

    def projections(self, cells: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Everything the layer computes from one cell alone: ``(..., c)`` -> ``q``, ``k``
        ``(..., H, e)``, ``W_o v`` ``(..., H, c)`` and ``1 + gate`` ``(..., c)``."""
        *lead, c = cells.shape
        H, e = self.heads, c // self.heads
        h = layer_norm(cells, self.norm)
        q, k = linear(h, self.qk.weight, self.qk.bias).view(*lead, 2, H, e).unbind(-3)
        v = linear(h, self.value.weight).view(*lead, H, c)
        return q, k, v, linear(h, self.gate.weight, self.gate.bias + 1.0)

    def forward(self, cells: Tensor, row_mask: Tensor, col_mask: Tensor, bias: Tensor,
                n: Tensor) -> tuple[Tensor, Tensor]:
        q, k, v, one_plus_gate = self.projections(cells)               # (B, D, N, H, *)
        heads_first = (lambda t: t.permute(0, 3, 1, 2, 4).contiguous())  # (B, H, D, N, *)
        projected = CellProjections(heads_first(q), heads_first(k), heads_first(v),
                                    one_plus_gate)
        return self.attend(cells + self.out_bias, projected, row_mask, col_mask, bias, n)

    def forward_lookup(self, table_cells: Tensor, index: Tensor, row_mask: Tensor,
                       col_mask: Tensor, bias: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`forward` for ``cells = table_cells[index]``, with the per-cell work done
        once per table entry: table_cells ``(T, c)``, index ``(B, D, N)`` long."""
        T, H = table_cells.shape[0], self.heads
        q, k, v, one_plus_gate = self.projections(table_cells)         # (T, H, *)
        offsets = torch.arange(0, H * T, T, device=index.device)[None, :, None, None]
        head_index = index[:, None] + offsets                          # (B, H, D, N)
        by_head = (lambda t: F.embedding(head_index, t.transpose(0, 1).reshape(H * T, -1)))
        base = table_cells + self.out_bias                             # (T, c)
        if kernels.use_kernels(table_cells, index.numel(), mixed=H * index.shape[1]):
            # products and mixing straight from the tables, compiled, no per-cell copies
            if q.shape[-1] == 8:
                sums = kernels.column_moments(index, row_mask, q, k)
            else:
                sums = self.row_sums(by_head(q), by_head(k), row_mask)
            side_by_side, moments = self.maps(sums, col_mask, bias, n)
            return kernels.column_mix(index, side_by_side, v, one_plus_gate, base), moments
        projected = CellProjections(by_head(q), by_head(k), by_head(v),   # (B, H, D, N, *)
                                    F.embedding(index, one_plus_gate))
        return self.attend(F.embedding(index, base), projected, row_mask, col_mask, bias, n)

    @staticmethod
    def row_sums(q: Tensor, k: Tensor, row_mask: Tensor) -> Tensor:
        """``sum_r <q_h(cell_ri), k_h(cell_rj)>`` over real rows: q, k ``(B, H, D, N, e)``
        -> ``(B, H, D, D)``."""
        B, H, D, N, e = q.shape
        if not bool(row_mask.all()):
            q = q * row_mask[:, None, None, :, None].to(q.dtype)       # padded rows add nothing
        sums = torch.bmm(q.view(B * H, D, N * e), k.view(B * H, D, N * e).transpose(1, 2))
        return sums.view(B, H, D, D)

    def maps(self, sums: Tensor, col_mask: Tensor, bias: Tensor, n: Tensor
             ) -> tuple[Tensor, Tensor]:
        """The H attention maps side by side ``(B, D, H * D)`` and the row-averaged
        query-key products ``(B, H, D, D)``, from their row sums ``(B, H, D, D)``."""
        B, H, D, _ = sums.shape
        e = self.norm.normalized_shape[0] // H
        moments = sums / (n.to(sums.dtype) * e ** 0.5)[:, None, None, None]   # (B, H, D, D)
        logits = (moments + bias).masked_fill(~col_mask[:, None, None, :], NEG_INF)
        att = torch.softmax(logits, dim=-1)                            # (B, H, D, D)
        return att.transpose(1, 2).reshape(B, D, H * D), moments

    def attend(self, base: Tensor, p: CellProjections, row_mask: Tensor, col_mask: Tensor,
               bias: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """The attention itself, from ``base = cells + out_bias`` and the cells'
        :class:`CellProjections`."""
        B, D, N, c = base.shape
        H = self.heads
        side_by_side, moments = self.maps(self.row_sums(p.q, p.k, row_mask), col_mask, bias, n)
        # sum_h A_h (W_o,h v_h) as one product: the maps side by side, the values stacked
        mixed = torch.bmm(side_by_side, p.v.view(B, H * D, N * c)).view(B, D, N, c)
        update = torch.addcmul(base, mixed, p.one_plus_gate)           # + mixed (1 + gate)
        return update, moments


class LearnedQueryReader(nn.Module):
    """Multi-head attention of ``Q`` learned query vectors over a masked set of cells.

    The key projection is folded into the queries (``<W_k x, q> = <x, W_k^T q>``; the key
    bias is constant over the set and cancels in the softmax) and the value projection is
    applied after pooling, so the per-cell work is two dense matrix products.

    items ``(B, D, N, c)``; mask ``(B, N)``; queries ``(Q, c)`` -> ``(B, D, Q, c)``, the
    attention output before the residual connection.  With ``norm`` (a LayerNorm) the
    items read are ``norm``'s affine map of ``items * scale`` (``scale`` ``(B, D, N, 1)``,
    optional): the affine map is folded into the key and value maps (the attention
    weights sum to 1), and the scale into the scores and the weights, so that neither is
    applied to every cell.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def folded_maps(self, queries: Tensor, norm: nn.LayerNorm | None
                    ) -> tuple[Tensor, Tensor, Tensor]:
        """The queries folded into the key map, scaled by ``1/sqrt(e)``, ``(H*Q, c)``, and the
        value map ``(c, c)``, ``(c,)`` (with ``norm``'s affine map folded into both)."""
        c, Q = queries.shape[1], queries.shape[0]
        H, e = self.heads, c // self.heads
        wk, wv, bv = self.k.weight, self.v.weight, self.v.bias
        if norm is not None:
            wk = wk * norm.weight              # the norm's shift: a constant per query, cancels
            wv, bv = fold_layer_norm(norm, wv, bv)
        q = self.q(queries).view(Q, H, e)                              # (Q, H, e)
        folded = torch.einsum("hec,qhe->hqc", wk.view(H, e, c), q).reshape(H * Q, c)
        return folded * e ** -0.5, wv, bv

    def attend_values(self, pooled: Tensor, wv: Tensor, bv: Tensor) -> Tensor:
        """Per-head pooled items ``(B, D, H, Q, c)`` -> output ``(B, D, Q, c)``."""
        B, D, H, Q, c = pooled.shape
        e = c // H
        vals = torch.einsum("bdhqc,hec->bdqhe", pooled, wv.view(H, e, c)) + bv.view(H, e)
        return self.out(vals.reshape(B, D, Q, c))                      # (B, D, Q, c)

    def read_normalised(self, cells: Tensor, mask: Tensor, queries: Tensor,
                        norm: nn.LayerNorm) -> Tensor | None:
        """``forward(LN(cells), mask, queries, norm)`` in one compiled pass over the cells
        (:func:`~mistmodel.kernels.read_columns`), ``LN`` being ``norm`` without its
        affine map; None where the kernel cannot bound the softmax (use ``forward``)."""
        B, D, N, c = cells.shape
        folded, wv, bv = self.folded_maps(queries, norm)
        pooled = kernels.read_columns(cells, mask, folded * LOG2E, norm.eps)
        if pooled is None:
            return None
        return self.attend_values(pooled.view(B, D, self.heads, queries.shape[0], c), wv, bv)

    def forward(self, items: Tensor, mask: Tensor, queries: Tensor,
                norm: nn.LayerNorm | None = None, scale: Tensor | None = None) -> Tensor:
        B, D, N, c = items.shape
        H, Q = self.heads, queries.shape[0]
        folded, wv, bv = self.folded_maps(queries, norm)               # (H*Q, c)
        scores = torch.matmul(folded, items.transpose(2, 3))           # (B, D, H*Q, N)
        if scale is not None:
            scale = scale.transpose(2, 3)                              # (B, D, 1, N)
            scores = scores * scale
        if not bool(mask.all()):
            scores = scores.masked_fill(~mask[:, None, None, :], NEG_INF)
        w = torch.softmax(scores, dim=-1)                              # over rows
        if scale is not None:
            w = w * scale
        pooled = torch.matmul(w, items).view(B, D, H, Q, c)            # (B, D, H, Q, c)
        return self.attend_values(pooled, wv, bv)


class InducedRowAttention(nn.Module):
    """Attention across the rows of each column through ``m`` learned inducing points.

    1. the inducing points read the column:  ``I' = FFN(I + Att(I, LN(cells)))``  ``(B, D, m, c)``
    2. every cell reads them: ``cells + Att(LN(cells), LN(I'))``, then a feed-forward layer.
    Step 1 masks padded rows; step 2 has only the ``m`` inducing points as keys.  Cost is
    ``O(N m)`` per column instead of ``O(N^2)``.  The cells do not change between the two
    steps, so both use the same ``LN(cells)``, whose scale and shift are folded into the
    maps that read it.  In step 2 the query projection is folded into the keys and the
    output projection into the values (per head), and the scores are laid out
    ``(H, m, N)`` so that the softmax over the m keys runs over a strided axis.

    cells ``(B, D, N, c)``; row_mask ``(B, N)`` -> ``(B, D, N, c)``.
    """

    def __init__(self, width: int, heads: int, inducing: int, ffn_mult: int):
        super().__init__()
        self.heads = heads
        self.inducing = nn.Parameter(torch.randn(inducing, width) * width ** -0.5)
        self.norm = nn.LayerNorm(width)
        self.read = LearnedQueryReader(width, heads)
        self.induced_ffn = FeedForward(width, ffn_mult)
        self.norm_induced = nn.LayerNorm(width)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.ffn = FeedForward(width, ffn_mult)

    def forward(self, cells: Tensor, row_mask: Tensor) -> Tensor:
        B, D, N, c = cells.shape
        H, e = self.heads, c // self.heads
        m = self.inducing.shape[0]
        hidden = self.ffn.net[0].out_features
        compiled = kernels.use_kernels(cells, vectors=H * m, hidden=hidden)
        # 1. inducing points read the column
        normed, read = None, None
        if compiled:
            read = self.read.read_normalised(cells, row_mask, self.inducing, self.norm)
        if read is None:
            normed = layer_norm(cells, self.norm, affine=False)        # (B, D, N, c)
            read = self.read(normed, row_mask, self.inducing, norm=self.norm)
        induced = self.induced_ffn(self.inducing + read)               # (B, D, m, c)
        # 2. cells read the inducing points
        k, v = self.kv(self.norm_induced(induced)).view(B, D, m, 2, H, e).unbind(3)
        wq, bq = fold_layer_norm(self.norm, self.q.weight, self.q.bias)
        keys = torch.einsum("hec,bdmhe->bdhmc", wq.view(H, e, c), k)   # (B, D, H, m, c)
        qbias = torch.einsum("he,bdmhe->bdhm", bq.view(H, e), k)       # (B, D, H, m)
        wo = self.out.weight.view(c, H, e)
        # Each head's weights sum to 1 over its m keys, so the output bias rides on the values.
        vals = torch.einsum("bdmhe,che->bdhmc", v, wo) + self.out.bias / H   # (B, D, H, m, c)
        scale = e ** -0.5 * LOG2E                                      # base-2 softmax below
        if compiled:                 # attention and feed-forward layer in one pass
            return kernels.update_cells(
                cells, keys.reshape(B, D, H * m, c) * scale, qbias.reshape(B, D, H * m) * scale,
                vals.reshape(B, D, H * m, c).transpose(2, 3), H, self.norm.eps,
                *self.ffn.folded(), self.ffn.norm.eps)
        # A key's scores <key, normed> + qbias lie within qbias -/+ sqrt(c) |key|, since
        # a normalised cell has norm <= sqrt(c).  Shifting by the largest upper bound
        # (per column and head) keeps every score <= 0 and each cell's largest within
        # the bounds' spread of 0, which lets the softmax skip its maximum.  The shift
        # is a constant of the softmax, outside the gradient.
        with torch.no_grad():
            reach = keys.norm(dim=-1) * c ** 0.5
            top = (qbias + reach).amax(-1, keepdim=True)               # (B, D, H, 1)
            gap = (top - (qbias - reach).amax(-1, keepdim=True)) * scale
        scores = torch.baddbmm((qbias - top).reshape(B * D, H * m, 1),
                               keys.reshape(B * D, H * m, c),
                               normed.reshape(B * D, N, c).transpose(1, 2),
                               beta=scale, alpha=scale).view(B, D, H, m, N)
        w = softmax_base2(scores, dim=3, gap=gap[:, :, :, :, None])    # over the m keys
        w = w.view(B * D, H * m, N)
        update = torch.baddbmm(cells.reshape(B * D, N, c), w.transpose(1, 2),
                               vals.reshape(B * D, H * m, c))                 # cells + attention
        return self.ffn(update.view(B, D, N, c))


class PoolingByAttention(nn.Module):
    """Pool each column over its rows with a learned seed query (PMA with one seed).

    The layer norm before the reader is applied through the reader (centred cells, their
    per-cell scale, the norm's affine map folded into the reader's maps).

    cells ``(B, D, N, c)``; row_mask ``(B, N)`` -> ``(B, D, c_out)``.
    """

    def __init__(self, width: int, heads: int, out_width: int):
        super().__init__()
        self.seed = nn.Parameter(torch.randn(1, width) * width ** -0.5)
        self.norm = nn.LayerNorm(width)
        self.read = LearnedQueryReader(width, heads)
        self.proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, out_width), nn.SiLU(),
                                  nn.Linear(out_width, out_width))

    def forward(self, cells: Tensor, row_mask: Tensor) -> Tensor:
        read = None
        if kernels.use_kernels(cells, vectors=self.read.heads * self.seed.shape[0]):
            read = self.read.read_normalised(cells, row_mask, self.seed, self.norm)
        if read is None:
            centred, scale = centre_and_scale(cells, self.norm)              # (B, D, N, c|1)
            read = self.read(centred, row_mask, self.seed, norm=self.norm, scale=scale)
        return self.proj((self.seed + read).squeeze(2))                      # (B, D, c_out)


class ColumnSetAttention(nn.Module):
    """Self-attention among the column summaries ``(B, D, c)`` with the column mask."""

    def __init__(self, width: int, heads: int, ffn_mult: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ffn = FeedForward(width, ffn_mult)

    def forward(self, cols: Tensor, col_mask: Tensor, bias: Tensor) -> Tensor:
        B, D, c = cols.shape
        H = self.heads
        q, k, v = self.qkv(self.norm(cols)).view(B, D, 3, H, c // H).permute(2, 0, 3, 1, 4)
        att = masked_attention(q, k, v, col_mask[:, None, None, :], bias)  # (B, H, D, e)
        cols = cols + self.out(att.transpose(1, 2).reshape(B, D, c))
        return self.ffn(cols)


class PairReadout(nn.Module):
    """Dataset features from column pairs.

    For every ordered pair of distinct valid columns ``(i, j)`` the features are the
    cross-moments that the column-attention layers computed (``(blocks x H)`` numbers),
    the correlation terms ``C_ij, C_ij^2`` (when statistics are on) and a one-hot of the
    pair's type (X-X, X-Y, Y-X, Y-Y).  An MLP maps each pair to ``width`` numbers, which
    are summed (scaled by 1/64) and averaged over pairs (the MLP's last, linear layer is
    applied after the sum, which is the same).  Sums over pairs are invariant to
    column permutations within X and within Y and blind to padded columns.

    moments ``(B, P, D, D)``; col_mask, col_type ``(B, D)`` -> ``(B, 2 * width)``.
    """

    def __init__(self, n_moments: int, width: int):
        super().__init__()
        self.scale = nn.Parameter(torch.full((n_moments,), 10.0))   # moments are ~0.1 at init
        self.net = nn.Sequential(nn.Linear(n_moments + 4, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, moments: Tensor, col_mask: Tensor, col_type: Tensor) -> Tensor:
        B, P, D, _ = moments.shape
        moments = moments * self.scale[:, None, None]
        t = col_type.clamp(0, 1)
        pair_type = F.one_hot(2 * t[:, :, None] + t[:, None, :], 4).to(moments.dtype)
        feats = torch.cat([moments.permute(0, 2, 3, 1), pair_type], dim=-1)  # (B, D, D, P+4)
        *hidden_layers, last = self.net
        hidden = feats
        for layer in hidden_layers:
            hidden = layer(hidden)                                         # (B, D, D, w)
        eye = torch.eye(D, dtype=torch.bool, device=moments.device)
        valid = (col_mask[:, :, None] & col_mask[:, None, :] & ~eye).to(hidden.dtype)
        pairs = valid.sum((1, 2))                                          # (B,)
        # the last layer is linear: applied once to the sum over pairs, not to every pair
        total = F.linear(torch.einsum("bij,bijw->bw", valid, hidden), last.weight)
        total = total + pairs[:, None] * last.bias
        count = pairs.clamp_min(1.0)[:, None]
        return torch.cat([total / 64.0, total / count], dim=1)


class SampleStatistics(nn.Module):
    """Exactly invariant summary statistics of the normalised sample.

    Returns the column correlation matrix ``(B, D, D)`` (zero outside the valid block) and
    a feature vector ``(B, 7)``: log n, log dim_x, log dim_y and the Gaussian-copula MI at
    two shrinkage levels (as value / 10 and log1p).  Computed in float64.
    """

    n_features = 7

    def forward(self, values: Tensor, row_mask: Tensor, col_mask: Tensor,
                col_type: Tensor, with_mi: bool) -> tuple[Tensor, Tensor]:
        rm = row_mask.double()
        v = values.double() * rm[:, :, None]                             # (B, N, D)
        n = rm.sum(1)                                                    # (B,)
        cm = col_mask.double()
        is_x = (col_type == X_COLUMN).double() * cm                      # (B, D)
        is_y = (col_type == Y_COLUMN).double() * cm
        dx, dy = is_x.sum(1), is_y.sum(1)
        mean = v.sum(1) / n[:, None]                                     # (B, D)
        centred = (v - mean[:, None, :]) * rm[:, :, None]
        cov = centred.transpose(1, 2) @ centred / n[:, None, None]       # (B, D, D)
        sd = cov.diagonal(dim1=1, dim2=2).clamp_min(1e-12).sqrt()
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        corr = (corr * cm[:, :, None] * cm[:, None, :]).clamp(-1.0, 1.0)
        feats = [n.log() / 6.0, dx.log() / 3.0, dy.log() / 3.0]
        if with_mi:
            eye = torch.eye(values.shape[2], dtype=corr.dtype, device=corr.device)
            shrink = torch.stack([torch.full_like(n, 0.02), (dx + dy) / (n + dx + dy)])
            s = shrink[:, :, None, None]                                 # (2, B, 1, 1)
            reg = (1 - s) * corr + s * eye                               # (2, B, D, D), diag 1
            # logdets of the X block, the Y block and the whole, at both shrinkages, in one call
            logdet = _masked_logdet(reg[:, None].expand(-1, 3, -1, -1, -1).flatten(0, 2),
                                    torch.stack([is_x, is_y, cm]).repeat(2, 1, 1).flatten(0, 1))
            ld_x, ld_y, ld_all = logdet.view(2, 3, -1).unbind(1)         # (2, B) each
            mi = (0.5 * (ld_x + ld_y - ld_all)).clamp_min(0.0)
            for level in mi:
                feats += [level / 10.0, torch.log1p(level)]
        else:
            feats += [torch.zeros_like(n)] * 4
        return corr.to(values.dtype), torch.stack(feats, dim=1).to(values.dtype)


def _masked_logdet(mat: Tensor, keep: Tensor) -> Tensor:
    """Batched logdet of the block of ``mat`` on the columns where ``keep`` is 1."""
    sub = mat * keep[:, :, None] * keep[:, None, :] + torch.diag_embed(1.0 - keep)
    chol, info = torch.linalg.cholesky_ex(sub)
    logdet = 2.0 * chol.diagonal(dim1=1, dim2=2).clamp_min(1e-30).log().sum(1)
    bad = info != 0
    if bool(bad.any()):                       # numerically not positive definite
        logdet = torch.where(bad, torch.linalg.slogdet(sub)[1], logdet)
    return logdet


class PointHead(nn.Module):
    """Dataset embedding -> I(X;Y) >= 0 via softplus.  ``(B, d_in)`` -> ``(B,)``."""

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.net[-1].bias, 1.0)         # softplus(1) ~ 1.3 nats to start

    def forward(self, emb: Tensor) -> Tensor:
        return F.softplus(self.net(emb).squeeze(-1))


class QuantileHead(nn.Module):
    """Dataset embedding -> non-crossing quantiles at arbitrary taus.

    Knot values on the fixed grid ``t_0 < ... < t_{K-1}``: ``q_0 = softplus(a_0)`` and
    ``q_k = q_{k-1} + softplus(a_k)``; ``q(tau)`` linearly interpolates the knots (and is
    constant beyond the end knots), so it is non-decreasing in ``tau`` and >= 0.
    ``(B, d_in)``, tau ``(B, T)`` or ``(T,)`` -> ``(B, T)``.
    """

    def __init__(self, d_in: int, hidden: int, knots: int, tau_min: float, tau_max: float):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, knots))
        with torch.no_grad():                              # start near q(tau) = 0.1 .. 2 nats
            self.net[-1].weight.mul_(0.1)
            self.net[-1].bias.fill_(-3.0)
            self.net[-1].bias[0] = -2.0
        self.register_buffer("grid", torch.linspace(tau_min, tau_max, knots), persistent=False)

    def knots(self, emb: Tensor) -> Tensor:
        return torch.cumsum(F.softplus(self.net(emb)), dim=-1)        # (B, K), increasing

    def forward(self, emb: Tensor, tau: Tensor) -> Tensor:
        return interpolate_quantiles(self.knots(emb), self.grid, tau)


def interpolate_quantiles(knots: Tensor, grid: Tensor, tau: Tensor) -> Tensor:
    """Piecewise-linear ``q(tau)`` from knot values ``(B, K)`` on ``grid`` ``(K,)``.

    ``tau`` ``(B, T)`` or ``(T,)`` -> ``(B, T)``; taus beyond the grid are clamped to it.
    """
    if tau.dim() == 1:
        tau = tau.expand(knots.shape[0], -1)
    grid = grid.to(knots.dtype)
    tau = tau.to(knots.dtype).clamp(float(grid[0]), float(grid[-1])).contiguous()
    idx = torch.searchsorted(grid, tau, right=True).clamp(1, grid.numel() - 1)
    t0, t1 = grid[idx - 1], grid[idx]                                  # (B, T)
    q0, q1 = knots.gather(1, idx - 1), knots.gather(1, idx)
    w = (tau - t0) / (t1 - t0)
    return q0 + w * (q1 - q0)


def pinball_loss(pred: Tensor, target: Tensor, tau: Tensor) -> Tensor:
    """Mean pinball (quantile) loss; ``pred``, ``tau``: ``(B, T)``; ``target``: ``(B,)``."""
    diff = target[:, None] - pred
    return torch.maximum(tau * diff, (tau - 1.0) * diff).mean()


# --------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------

class MISTNet(nn.Module):
    """The full estimator network (see the module docstring).

    ``forward(values, row_mask, col_mask, col_type, tau=None, lookup=None)``:
    values ``(B, N, D)`` normalised cells (zero where padded), row_mask ``(B, N)`` bool,
    col_mask ``(B, D)`` bool, col_type ``(B, D)`` (0 = X, 1 = Y); returns ``(B,)`` point
    estimates, or for ``mist_qr`` the quantiles ``(B, T)`` at ``tau`` (default: median).
    ``lookup``: the batch's :class:`~mistmodel.batching.ScoreLookup`, an optional shortcut
    (see :meth:`embed_dataset`).
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        c, H, s = config.width, config.heads, config.summary_width
        self.embed = ColumnEmbedding(c)
        self.stats = SampleStatistics()
        self.col_bias = nn.ModuleList(CorrelationBias(H) for _ in range(config.blocks + 1))
        self.col_att = nn.ModuleList(TiedColumnAttention(c, H) for _ in range(config.blocks))
        self.row_att = nn.ModuleList(InducedRowAttention(c, H, config.inducing, config.ffn_mult)
                                     for _ in range(config.blocks))
        self.row_pool = PoolingByAttention(c, H, s)
        self.col_set = ColumnSetAttention(s, H, config.ffn_mult)
        self.final_norm = nn.LayerNorm(s)
        n_moments = config.blocks * H + (2 if config.stats_features else 0)
        self.pairs = PairReadout(n_moments, config.pair_width)
        d_emb = 5 * s + 2 * config.pair_width + SampleStatistics.n_features
        if config.variant == "mist":
            self.head: nn.Module = PointHead(d_emb, config.head_hidden)
        else:
            self.head = QuantileHead(d_emb, config.head_hidden, config.quantile_knots,
                                     config.tau_min, config.tau_max)

    @property
    def is_quantile(self) -> bool:
        return self.config.variant == "mist_qr"

    def embed_dataset(self, values: Tensor, row_mask: Tensor, col_mask: Tensor,
                      col_type: Tensor, lookup: ScoreLookup | None = None) -> Tensor:
        """Padded normalised samples -> dataset embeddings ``(B, 5 s + 2 w + 7)``.

        ``lookup`` (optional, from :func:`~mistmodel.batching.collate`) gives every cell
        value as a position in a small table (``values == table[index].transpose(1, 2)``
        on real cells, ``table[0] == 0``).  The embedding and the first column attention's
        per-cell layers then run once per table entry and are gathered: same result up to
        float rounding, less work, since after the copula a sample of ``n`` rows holds at
        most ``2 n - 1`` distinct values.
        """
        row_mask, col_mask, col_type = row_mask.bool(), col_mask.bool(), col_type.long()
        use_stats = self.config.stats_features
        corr, feats = self.stats(values, row_mask, col_mask, col_type, with_mi=use_stats)
        corr_or_none = corr if use_stats else None
        n = row_mask.sum(1)                                                   # (B,)
        real = row_mask[:, :, None] & col_mask[:, None, :]                    # (B, N, D)
        if lookup is None:
            cells = self.embed(values * real, col_type)                       # (B, D, N, c)
        else:
            table_cells, index = self._embed_table(lookup, real, col_type)    # (2T, c), (B, D, N)
        moments = []
        for i, (bias, col_att, row_att) in enumerate(zip(self.col_bias, self.col_att,
                                                         self.row_att)):
            b = bias(corr_or_none, col_type)
            if lookup is not None and i == 0:
                cells, mom = col_att.forward_lookup(table_cells, index, row_mask, col_mask, b, n)
            else:
                cells, mom = col_att(cells, row_mask, col_mask, b, n)
            moments.append(mom)
            cells = row_att(cells, row_mask)
        if lookup is not None and not self.col_att:
            cells = F.embedding(index, table_cells)
        if use_stats:
            moments += [corr[:, None], corr[:, None] ** 2]
        pair_emb = self.pairs(torch.cat(moments, dim=1), col_mask, col_type)   # (B, 2 w)
        cols = self.row_pool(cells, row_mask)                                 # (B, D, s)
        cols = self.col_set(cols, col_mask, self.col_bias[-1](corr_or_none, col_type))
        cols = self.final_norm(cols)
        cm = col_mask.to(cols.dtype)
        wx = cm * (col_type == X_COLUMN).to(cols.dtype)                       # (B, D)
        wy = cm * (col_type == Y_COLUMN).to(cols.dtype)
        sum_x = torch.einsum("bd,bds->bs", wx, cols)
        sum_y = torch.einsum("bd,bds->bs", wy, cols)
        mean_x = sum_x / wx.sum(1, keepdim=True)
        mean_y = sum_y / wy.sum(1, keepdim=True)
        emb = torch.cat([mean_x, mean_y, (sum_x + sum_y) / 16.0, sum_x / 8.0, sum_y / 8.0,
                         pair_emb, feats], dim=1)
        return emb

    def _embed_table(self, lookup: ScoreLookup, real: Tensor, col_type: Tensor
                     ) -> tuple[Tensor, Tensor]:
        """Embedded table entries ``(2 T, c)`` (as X cells, then as Y cells) and each
        cell's row in it ``(B, D, N)``; padded cells point at entry 0 (value 0)."""
        table = lookup.table.to(real.device)
        if table.dim() != 1 or float(table[0]) != 0.0:
            raise ValueError("lookup.table must be 1-D with table[0] == 0 (the padding value)")
        T = table.shape[0]
        as_x_and_y = table.to(self.embed.tag.weight.dtype)[:, None].expand(T, 2)[None]  # (1, T, 2)
        tags = torch.tensor([[X_COLUMN, Y_COLUMN]], device=real.device)
        table_cells = self.embed(as_x_and_y, tags).reshape(2 * T, -1)                  # (2T, c)
        index = lookup.index.to(real.device) * real.transpose(1, 2)                    # (B, D, N)
        return table_cells, index.add_(col_type[:, :, None] * T)

    def forward(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor,
                tau: Tensor | None = None, lookup: ScoreLookup | None = None) -> Tensor:
        emb = self.embed_dataset(values, row_mask, col_mask, col_type, lookup)
        if self.is_quantile:
            if tau is None:
                tau = torch.full((1,), 0.5, dtype=emb.dtype, device=emb.device)
            return self.head(emb, tau)
        return self.head(emb)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
