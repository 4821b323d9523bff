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
  statistically stable at small ``n`` and costs ``O(n D^2 c)``;
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
  (:class:`PointHead`); with ``anchor=True`` the head's output is a correction added
  before the ``softplus`` to the inverse ``softplus`` of a Gaussian-copula statistic (the
  bias-corrected one with ``corrected_stat=True``, else the MI - or conditional MI - at
  the lower shrinkage), so a head that outputs 0 returns that statistic;
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

Shapes in comments: ``B`` batch, ``N`` rows (padded), ``D`` columns (padded), ``H``
heads, ``e = c / H`` head width, ``m`` inducing points, ``Q`` learned queries, ``T``
taus, ``K`` quantile knots.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "ModelConfig",
    "MISTNet",
    "attention",
    "FeedForward",
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
    "count_parameters",
]

X_COLUMN, Y_COLUMN, Z_COLUMN = 0, 1, 2


KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def config_from_dict(cls: Any, d: dict[str, Any], what: str) -> Any:
    """``cls(**d)`` for a config dataclass, naming any key it does not know."""
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"unknown {what} config keys: {sorted(unknown)}")
    for f in fields(cls):
        if f.name in d and not _same_kind(d[f.name], f.default):
            raise ValueError(f"{what} config key {f.name!r} must be "
                             f"{KIND_NAMES.get(type(f.default), 'a value like ' + repr(f.default))}"
                             f"; got {d[f.name]!r}")
    return cls(**d)


def _same_kind(value: Any, default: Any) -> bool:
    """Whether ``value`` may stand where the field's ``default`` does (an int where a float
    is expected; a bool only where a bool is)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, (int, str)):
        return isinstance(value, type(default))
    return True


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
    conditional: bool = False       # a third column tag, Z: the network reads I(X;Y|Z)
    anchor: bool = False            # point head: a correction to the Gaussian-copula statistic
    corrected_stat: bool = False    # + the Gaussian-copula statistic less its Wishart bias

    def __post_init__(self) -> None:
        if self.variant not in ("mist", "mist_qr"):
            raise ValueError(f"variant must be 'mist' or 'mist_qr', got {self.variant!r}")
        if self.conditional and self.variant != "mist":
            raise ValueError("a conditional network is a point estimator: variant 'mist'")
        if self.anchor and (self.variant != "mist" or not self.stats_features):
            raise ValueError("anchor needs the point head (variant 'mist') and "
                             "stats_features=True")
        if self.corrected_stat and not self.stats_features:
            raise ValueError("corrected_stat needs stats_features=True")
        sizes = ("width", "heads", "inducing", "ffn_mult", "summary_width", "pair_width",
                 "head_hidden")
        for name in sizes:
            if getattr(self, name) < 1:
                raise ValueError(f"model config {name} must be >= 1; got {getattr(self, name)!r}")
        if self.blocks < 0:
            raise ValueError(f"model config blocks must be >= 0; got {self.blocks!r}")
        if self.quantile_knots < 2:
            raise ValueError(f"model config quantile_knots must be >= 2; got "
                             f"{self.quantile_knots!r}")
        if not 0.0 < self.tau_min < 0.5 < self.tau_max < 1.0:
            raise ValueError("model config needs 0 < tau_min < 0.5 < tau_max < 1 (the quantile "
                             f"grid holds the median); got tau_min {self.tau_min!r}, tau_max "
                             f"{self.tau_max!r}")
        if self.width % self.heads or self.summary_width % self.heads:
            raise ValueError(f"width {self.width} and summary_width {self.summary_width} "
                             f"must be divisible by heads {self.heads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return config_from_dict(cls, d, "model")

    @property
    def tags(self) -> int:
        """Column tags: X and Y, and Z for a conditional network."""
        return 3 if self.conditional else 2


# --------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------

def attention(q: Tensor, k: Tensor, v: Tensor, key_mask: Tensor | None = None,
              bias: Tensor | None = None) -> Tensor:
    """Scaled dot-product attention ``softmax(q k^T / sqrt(e) + bias) v`` over the keys
    that ``key_mask`` allows (True = may be attended).

    ``q``: ``(..., Lq, e)``; ``k``, ``v``: ``(..., Lk, e)``; ``key_mask`` and ``bias``
    broadcast to ``(..., Lq, Lk)`` -> ``(..., Lq, e)``.
    """
    scores = torch.matmul(q, k.transpose(-1, -2)) * q.shape[-1] ** -0.5   # (..., Lq, Lk)
    if bias is not None:
        scores = scores + bias
    if key_mask is not None:
        scores = scores.masked_fill(~key_mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)                  # (..., Lq, e)


def split_heads(x: Tensor, heads: int) -> Tensor:
    """``(..., L, H * e)`` -> ``(..., H, L, e)``."""
    *lead, L, c = x.shape
    return x.view(*lead, L, heads, c // heads).transpose(-3, -2)


def merge_heads(x: Tensor) -> Tensor:
    """``(..., H, L, e)`` -> ``(..., L, H * e)``."""
    *lead, H, L, e = x.shape
    return x.transpose(-3, -2).reshape(*lead, L, H * e)


class FeedForward(nn.Module):
    """Pre-norm position-wise MLP with a residual connection: ``x + W2 silu(W1 LN(x))``."""

    def __init__(self, width: int, mult: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.net = nn.Sequential(nn.Linear(width, mult * width), nn.SiLU(),
                                 nn.Linear(mult * width, width))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(self.norm(x))


# --------------------------------------------------------------------------------------
# blocks
# --------------------------------------------------------------------------------------

class ColumnEmbedding(nn.Module):
    """Cell value -> vector of width c, plus a learned tag: X, Y (or Z) column.

    values ``(B, N, D)``, col_type ``(B, D)`` -> cells ``(B, D, N, c)`` (column-major).
    """

    def __init__(self, width: int, tags: int = 2):
        super().__init__()
        self.value = nn.Sequential(nn.Linear(1, width), nn.SiLU(), nn.Linear(width, width))
        self.tag = nn.Embedding(tags, width)
        nn.init.normal_(self.tag.weight, std=0.1)    # the value, not the tag, dominates a cell

    def forward(self, values: Tensor, col_type: Tensor) -> Tensor:
        cells = self.value(values.transpose(1, 2).unsqueeze(-1))       # (B, D, N, c)
        return cells + self.tag(col_type)[:, :, None, :]               # + (B, D, 1, c)


class CorrelationBias(nn.Module):
    """Per-head attention bias between columns from their correlation and their tags.

    ``bias[b, h, i, j] = a_h C_ij + q_h C_ij^2 + t_h[type_i, type_j]`` -> ``(B, H, D, D)``.
    """

    def __init__(self, heads: int, tags: int = 2):
        super().__init__()
        self.lin = nn.Parameter(torch.zeros(heads))
        self.quad = nn.Parameter(torch.zeros(heads))
        self.pair = nn.Parameter(torch.zeros(heads, tags, tags))

    def forward(self, corr: Tensor | None, col_type: Tensor) -> Tensor:
        heads, tags = self.pair.shape[0], self.pair.shape[1]
        index = (tags * col_type[:, :, None] + col_type[:, None, :]).reshape(-1)
        pair = self.pair.reshape(heads, tags * tags).index_select(1, index)
        bias = pair.reshape((heads,) + col_type.shape + col_type.shape[-1:]).transpose(0, 1)
        if corr is not None:
            c = corr[:, None]                                            # (B, 1, D, D)
            bias = bias + self.lin[:, None, None] * c + self.quad[:, None, None] * c * c
        return bias


class TiedColumnAttention(nn.Module):
    """Attention across the columns of each row, with the map tied across rows.

    With ``h = LN(cell)``, for head h over the valid columns j:

        M_h[i, j] = mean_r <q_h(h_ri), k_h(h_rj)> / sqrt(e)            (row-averaged)
        A_h[i, j] = softmax_j(M_h[i, j] + bias_h[i, j])
        cell_ri  <- cell_ri + b_o + (1 + gate(h_ri)) * sum_h sum_j A_h[i, j] W_o,h v_h(h_rj)

    The output projection ``W_o,h`` is part of each head's value map (``value`` maps a
    cell to the ``H`` projected values at once).  The gate of the receiving cell makes
    products of a cell with its partners appear from the first layer on.  There is no
    feed-forward layer here: the row attention that always follows has one.

    cells ``(B, D, N, c)``; row_mask ``(B, N)``; col_mask ``(B, D)``; bias ``(B, H, D, D)``;
    n ``(B,)`` valid rows -> cells ``(B, D, N, c)`` and the moments ``M`` ``(B, H, D, D)``
    (learned cross-moments of column pairs, read by :class:`PairReadout`).
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.qk = nn.Linear(width, 2 * width)                     # q and k for all heads
        self.value = nn.Linear(width, heads * width, bias=False)  # W_o,h v_h for each head
        self.out_bias = nn.Parameter(torch.zeros(width))
        self.gate = nn.Linear(width, width)

    def forward(self, cells: Tensor, row_mask: Tensor, col_mask: Tensor, bias: Tensor,
                n: Tensor) -> tuple[Tensor, Tensor]:
        B, D, N, c = cells.shape
        H, e = self.heads, c // self.heads
        h = self.norm(cells)
        q, k = self.qk(h).view(B, D, N, 2, H, e).unbind(3)              # (B, D, N, H, e)
        q = q * row_mask[:, None, :, None, None].to(q.dtype)            # padded rows add 0
        sums = torch.einsum("binhe,bjnhe->bhij", q, k)                  # (B, H, D, D)
        moments = sums / (n.to(sums.dtype) * e ** 0.5)[:, None, None, None]
        logits = (moments + bias).masked_fill(~col_mask[:, None, None, :], float("-inf"))
        att = torch.softmax(logits, dim=-1)                             # (B, H, D, D)
        v = self.value(h).view(B, D, N, H, c)                           # (B, D, N, H, c)
        mixed = torch.einsum("bhij,bjnhc->binc", att, v)                # (B, D, N, c)
        return cells + self.out_bias + mixed * (1.0 + self.gate(h)), moments


class LearnedQueryReader(nn.Module):
    """Multi-head attention of ``Q`` learned query vectors over a masked set of items.

    items ``(B, D, N, c)``; mask ``(B, N)``; queries ``(Q, c)`` -> ``(B, D, Q, c)``, the
    attention output before the residual connection.
    """

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.out = nn.Linear(width, width)

    def forward(self, items: Tensor, mask: Tensor, queries: Tensor) -> Tensor:
        H = self.heads
        q = split_heads(self.q(queries), H)                             # (H, Q, e)
        k = split_heads(self.k(items), H)                               # (B, D, H, N, e)
        v = split_heads(self.v(items), H)
        read = attention(q, k, v, mask[:, None, None, None, :])         # (B, D, H, Q, e)
        return self.out(merge_heads(read))                              # (B, D, Q, c)


class InducedRowAttention(nn.Module):
    """Attention across the rows of each column through ``m`` learned inducing points.

    1. the inducing points read the column:  ``I' = FFN(I + Att(I, LN(cells)))``  ``(B, D, m, c)``
    2. every cell reads them: ``cells + Att(LN(cells), LN'(I'))``, then a feed-forward layer.

    Step 1 masks padded rows; step 2 has only the ``m`` inducing points as keys.  Cost is
    ``O(N m)`` per column instead of ``O(N^2)``.  Both steps read the same ``LN(cells)``.

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
        H = self.heads
        normed = self.norm(cells)                                       # (B, D, N, c)
        # 1. the inducing points read the column
        induced = self.induced_ffn(self.inducing + self.read(normed, row_mask, self.inducing))
        # 2. every cell reads the inducing points
        k, v = self.kv(self.norm_induced(induced)).chunk(2, dim=-1)     # (B, D, m, c)
        q = split_heads(self.q(normed), H)                              # (B, D, H, N, e)
        read = attention(q, split_heads(k, H), split_heads(v, H))       # (B, D, H, N, e)
        return self.ffn(cells + self.out(merge_heads(read)))


class PoolingByAttention(nn.Module):
    """Pool each column over its rows with a learned seed query (PMA with one seed).

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
        read = self.read(self.norm(cells), row_mask, self.seed)         # (B, D, 1, c)
        return self.proj((self.seed + read).squeeze(2))                 # (B, D, c_out)


class ColumnSetAttention(nn.Module):
    """Self-attention among the column summaries ``(B, D, c)`` with the column mask and a
    per-head bias ``(B, H, D, D)``, then a feed-forward layer."""

    def __init__(self, width: int, heads: int, ffn_mult: int):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ffn = FeedForward(width, ffn_mult)

    def forward(self, cols: Tensor, col_mask: Tensor, bias: Tensor) -> Tensor:
        q, k, v = (split_heads(t, self.heads)
                   for t in self.qkv(self.norm(cols)).chunk(3, dim=-1))  # (B, H, D, e)
        att = attention(q, k, v, col_mask[:, None, None, :], bias)      # (B, H, D, e)
        return self.ffn(cols + self.out(merge_heads(att)))


class PairReadout(nn.Module):
    """Dataset features from column pairs.

    For every ordered pair of distinct valid columns ``(i, j)`` the features are the
    cross-moments that the column-attention layers computed (``(blocks x H)`` numbers,
    scaled by a learned factor), the correlation terms ``C_ij, C_ij^2`` (when statistics
    are on) and a one-hot of the pair's type (X-X, X-Y, Y-X, Y-Y; with a Z tag, all nine
    ordered pairs of X, Y, Z).  An MLP maps each pair
    to ``width`` numbers, which are summed (scaled by 1/64) and averaged over pairs.  Sums
    over pairs are invariant to column permutations within X and within Y and blind to
    padded columns.

    moments ``(B, P, D, D)``; col_mask, col_type ``(B, D)`` -> ``(B, 2 * width)``.
    """

    def __init__(self, n_moments: int, width: int, tags: int = 2):
        super().__init__()
        self.tags = tags
        self.scale = nn.Parameter(torch.full((n_moments,), 10.0))   # moments are ~0.1 at init
        self.net = nn.Sequential(nn.Linear(n_moments + tags * tags, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, moments: Tensor, col_mask: Tensor, col_type: Tensor) -> Tensor:
        D = moments.shape[-1]
        moments = moments * self.scale[:, None, None]
        T = self.tags
        t = col_type.clamp(0, T - 1)
        pair_type = F.one_hot(T * t[:, :, None] + t[:, None, :], T * T).to(moments.dtype)
        feats = torch.cat([moments.permute(0, 2, 3, 1), pair_type], dim=-1)  # (B, D, D, P+4)
        column = torch.arange(D, device=moments.device)
        distinct = column[:, None] != column[None, :]                        # (D, D)
        valid = (col_mask[:, :, None] & col_mask[:, None, :] & distinct).to(feats.dtype)
        total = torch.einsum("bij,bijw->bw", valid, self.net(feats))   # (B, w)
        count = valid.sum((1, 2)).clamp_min(1.0)[:, None]               # pairs per sample
        return torch.cat([total / 64.0, total / count], dim=1)


class SampleStatistics(nn.Module):
    """Exactly invariant summary statistics of the normalised sample.

    Returns the column correlation matrix ``(B, D, D)`` (zero outside the valid block) and
    a feature vector ``(B, 7)``: log n, log dim_x, log dim_y and the Gaussian-copula MI at
    two shrinkage levels (as value / 10 and log1p).  A conditional network gets ``(B, 8)``:
    log dim_z too, and the Gaussian-copula conditional MI
    ``0.5 (logdet C_XZ + logdet C_YZ - logdet C_Z - logdet C)`` in place of the MI.
    ``corrected=True`` adds two (value / 10 and log1p of its positive part): the statistic
    without shrinkage less its expectation under independence-free Gaussian sampling, the
    Wishart bias ``0.5 (B(dx + dz) + B(dy + dz) - B(dz) - B(D))`` with
    ``B(d) = sum_{i <= d} digamma((n - i) / 2)`` (valid for ``n > D + 2``; below, the
    statistic at the second shrinkage).  Computed in float64.
    """

    def __init__(self, conditional: bool = False, corrected: bool = False):
        super().__init__()
        self.conditional = conditional
        self.corrected = corrected

    @property
    def n_features(self) -> int:
        return (8 if self.conditional else 7) + (2 if self.corrected else 0)

    def forward(self, values: Tensor, row_mask: Tensor, col_mask: Tensor,
                col_type: Tensor, with_mi: bool) -> tuple[Tensor, Tensor]:
        rm = row_mask.double()
        v = values.double() * rm[:, :, None]                             # (B, N, D)
        n = rm.sum(1)                                                    # (B,)
        cm = col_mask.double()
        is_x = (col_type == X_COLUMN).double() * cm                      # (B, D)
        is_y = (col_type == Y_COLUMN).double() * cm
        is_z = (col_type == Z_COLUMN).double() * cm
        dx, dy, dz = is_x.sum(1), is_y.sum(1), is_z.sum(1)
        mean = v.sum(1) / n[:, None]                                     # (B, D)
        centred = (v - mean[:, None, :]) * rm[:, :, None]
        cov = centred.transpose(1, 2) @ centred / n[:, None, None]       # (B, D, D)
        sd = cov.diagonal(dim1=1, dim2=2).clamp_min(1e-12).sqrt()
        corr = cov / (sd[:, :, None] * sd[:, None, :])
        corr = (corr * cm[:, :, None] * cm[:, None, :]).clamp(-1.0, 1.0)
        feats = [n.log() / 6.0, dx.log() / 3.0, dy.log() / 3.0]
        if self.conditional:
            feats.append(dz.clamp_min(1.0).log() / 3.0)
        if with_mi:
            eye = torch.eye(values.shape[2], dtype=corr.dtype, device=corr.device)
            d = dx + dy + dz
            levels = [torch.full_like(n, 0.02), d / (n + d)]
            if self.corrected:
                levels.append(torch.zeros_like(n))
            L = len(levels)
            s = torch.stack(levels)[:, :, None, None]                    # (L, B, 1, 1)
            reg = (1 - s) * corr + s * eye                               # (L, B, D, D), diag 1
            # I(X;Y) = 0.5 (ld_X + ld_Y - ld_all); I(X;Y|Z) = 0.5 (ld_XZ + ld_YZ - ld_Z - ld_all)
            blocks = [is_x + is_z, is_y + is_z, is_z, cm] if self.conditional else [is_x, is_y, cm]
            k = len(blocks)
            # the blocks' logdets at every shrinkage, in one call
            logdet = _masked_logdet(reg[:, None].expand(-1, k, -1, -1, -1).flatten(0, 2),
                                    torch.stack(blocks).repeat(L, 1, 1).flatten(0, 1))
            parts = logdet.view(L, k, -1).unbind(1)                      # (L, B) each
            if self.conditional:
                raw = 0.5 * (parts[0] + parts[1] - parts[2] - parts[3])
            else:
                raw = 0.5 * (parts[0] + parts[1] - parts[2])
            mi = raw[:2].clamp_min(0.0)
            for level in mi:
                feats += [level / 10.0, torch.log1p(level)]
            if self.corrected:
                bias = _wishart_bias(n, dx, dy, dz, values.shape[2])
                valid = (n > d + 2) & torch.isfinite(raw[2])
                fixed = torch.where(valid, raw[2] - torch.where(valid, bias, 0.0), mi[1])
                feats += [fixed / 10.0, torch.log1p(fixed.clamp_min(0.0))]
        else:
            feats += [torch.zeros_like(n)] * (6 if self.corrected else 4)
        return corr.to(values.dtype), torch.stack(feats, dim=1).to(values.dtype)


def _wishart_bias(n: Tensor, dx: Tensor, dy: Tensor, dz: Tensor, width: int) -> Tensor:
    """Expected excess of the sample Gaussian (conditional) MI over the truth, for ``n``
    rows with an estimated mean: ``0.5 (B(dx + dz) + B(dy + dz) - B(dz) - B(D))`` with
    ``B(d) = sum_{i <= d} digamma((n - i) / 2)`` (terms with ``n - i <= 0`` are left out;
    the caller uses the result only where ``n > D + 2``)."""
    i = torch.arange(1, width + 1, dtype=n.dtype, device=n.device)
    half = (n[:, None] - i) / 2.0                                        # (B, width)
    terms = torch.where(half > 0, torch.digamma(half.clamp_min(1e-3)), 0.0)
    cum = torch.cat([torch.zeros_like(n)[:, None], terms.cumsum(1)], dim=1)  # B(0..width)

    def B(d: Tensor) -> Tensor:
        return cum.gather(1, d.long()[:, None])[:, 0]

    return 0.5 * (B(dx + dz) + B(dy + dz) - B(dz) - B(dx + dy + dz))


def _masked_logdet(mat: Tensor, keep: Tensor) -> Tensor:
    """Batched logdet of the block of ``mat`` on the columns where ``keep`` is 1."""
    sub = mat * keep[:, :, None] * keep[:, None, :] + torch.diag_embed(1.0 - keep)
    chol, info = torch.linalg.cholesky_ex(sub)
    logdet = 2.0 * chol.diagonal(dim1=1, dim2=2).clamp_min(1e-30).log().sum(1)
    # where the block is numerically not positive definite, the LU-based logdet
    return torch.where(info != 0, torch.linalg.slogdet(sub)[1], logdet)


class PointHead(nn.Module):
    """Dataset embedding -> I(X;Y) >= 0 via softplus.  ``(B, d_in)`` -> ``(B,)``.

    With ``anchor`` ``(B,)`` (a statistic >= 0, nats) the output is
    ``softplus(net(emb) + softplus^-1(max(anchor, 1e-3)))``: a correction to the anchor.
    """

    def __init__(self, d_in: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))
        nn.init.constant_(self.net[-1].bias, 1.0)         # softplus(1) ~ 1.3 nats to start

    def forward(self, emb: Tensor, anchor: Tensor | None = None) -> Tensor:
        out = self.net(emb).squeeze(-1)
        if anchor is not None:
            a = anchor.clamp_min(1e-3)
            out = out + a + torch.log(-torch.expm1(-a))   # + softplus^-1(a)
        return F.softplus(out)


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
        self.tau_min, self.tau_max = float(tau_min), float(tau_max)
        self.register_buffer("grid", self.make_grid(knots), persistent=False)

    def make_grid(self, knots: int, device: torch.device | str | None = None) -> Tensor:
        """The knots' taus (not stored in a checkpoint: rebuilt from the config); on
        torch's default device unless ``device`` is given."""
        return torch.linspace(self.tau_min, self.tau_max, knots, dtype=torch.float32,
                              device=device)

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
    tau = tau.to(knots.dtype).clamp(grid[0], grid[-1]).contiguous()
    idx = torch.searchsorted(grid, tau, right=True).clamp(1, grid.numel() - 1)
    t0, t1 = grid[idx - 1], grid[idx]                                  # (B, T)
    q0, q1 = knots.gather(1, idx - 1), knots.gather(1, idx)
    w = (tau - t0) / (t1 - t0)
    return q0 + w * (q1 - q0)


# --------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------

class MISTNet(nn.Module):
    """The full estimator network (see the module docstring).

    ``forward(values, row_mask, col_mask, col_type, tau=None)``: values ``(B, N, D)``
    normalised cells (zero where padded), row_mask ``(B, N)`` bool, col_mask ``(B, D)``
    bool, col_type ``(B, D)`` (0 = X, 1 = Y, 2 = Z); returns ``(B,)`` point estimates, or for
    ``mist_qr`` the quantiles ``(B, T)`` at ``tau`` (default: the median).

    It runs in three steps: :meth:`statistics` (float64), :meth:`embed_dataset` (all
    the work on cells; no branch on tensor values, so it traces and exports whole) and
    :meth:`predict` (the head).
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config = config or ModelConfig()
        c, H, s, T = config.width, config.heads, config.summary_width, config.tags
        self.embed = ColumnEmbedding(c, T)
        self.stats = SampleStatistics(config.conditional, config.corrected_stat)
        self.col_bias = nn.ModuleList(CorrelationBias(H, T) for _ in range(config.blocks + 1))
        self.col_att = nn.ModuleList(TiedColumnAttention(c, H) for _ in range(config.blocks))
        self.row_att = nn.ModuleList(InducedRowAttention(c, H, config.inducing, config.ffn_mult)
                                     for _ in range(config.blocks))
        self.row_pool = PoolingByAttention(c, H, s)
        self.col_set = ColumnSetAttention(s, H, config.ffn_mult)
        self.final_norm = nn.LayerNorm(s)
        n_moments = config.blocks * H + (2 if config.stats_features else 0)
        self.pairs = PairReadout(n_moments, config.pair_width, T)
        d_emb = (7 if config.conditional else 5) * s + 2 * config.pair_width \
            + self.stats.n_features
        if config.variant == "mist":
            self.head: nn.Module = PointHead(d_emb, config.head_hidden)
        else:
            self.head = QuantileHead(d_emb, config.head_hidden, config.quantile_knots,
                                     config.tau_min, config.tau_max)

    @property
    def is_quantile(self) -> bool:
        return self.config.variant == "mist_qr"

    def statistics(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor
                   ) -> tuple[Tensor, Tensor]:
        """The sample's correlation matrix ``(B, D, D)`` and statistics ``(B, F)``
        (``F = stats.n_features``: 7, 8 when conditional, + 2 with ``corrected_stat``)
        (:class:`SampleStatistics`, in float64)."""
        return self.stats(values, row_mask.bool(), col_mask.bool(), col_type.long(),
                          with_mi=self.config.stats_features)

    def embed_dataset(self, values: Tensor, row_mask: Tensor, col_mask: Tensor,
                      col_type: Tensor, corr: Tensor, feats: Tensor) -> Tensor:
        """Padded normalised samples and their :meth:`statistics` -> dataset embeddings
        ``(B, 5 s + 2 w + F)`` (conditional: ``7 s + 2 w + F``; ``F`` as in
        :meth:`statistics`)."""
        row_mask, col_mask, col_type = row_mask.bool(), col_mask.bool(), col_type.long()
        use_stats = self.config.stats_features
        corr_or_none = corr if use_stats else None
        n = row_mask.sum(1)                                                   # (B,)
        real = row_mask[:, :, None] & col_mask[:, None, :]                    # (B, N, D)
        cells = self.embed(values * real, col_type)                           # (B, D, N, c)
        moments = []
        for bias, col_att, row_att in zip(self.col_bias, self.col_att, self.row_att):
            cells, mom = col_att(cells, row_mask, col_mask, bias(corr_or_none, col_type), n)
            moments.append(mom)                                               # (B, H, D, D)
            cells = row_att(cells, row_mask)
        cols = self.row_pool(cells, row_mask)                                 # (B, D, s)
        return self.summarize_columns(cols, moments, col_mask, col_type, corr, feats)

    def summarize_columns(self, cols: Tensor, moments: list[Tensor], col_mask: Tensor,
                          col_type: Tensor, corr: Tensor, feats: Tensor) -> Tensor:
        """Pooled columns ``(B, D, s)`` and the column attentions' moments
        ``[(B, H, D, D), ...]`` -> dataset embeddings ``(B, 5 s + 2 w + F)`` (conditional:
        ``7 s + 2 w + F``)."""
        use_stats = self.config.stats_features
        if use_stats:
            moments = moments + [corr[:, None], corr[:, None] ** 2]
        pair_emb = self.pairs(torch.cat(moments, dim=1), col_mask, col_type)   # (B, 2 w)
        bias = self.col_bias[-1](corr if use_stats else None, col_type)
        cols = self.final_norm(self.col_set(cols, col_mask, bias))
        cm = col_mask.to(cols.dtype)
        wx = cm * (col_type == X_COLUMN).to(cols.dtype)                       # (B, D)
        wy = cm * (col_type == Y_COLUMN).to(cols.dtype)
        sum_x = torch.einsum("bd,bds->bs", wx, cols)                          # (B, s)
        sum_y = torch.einsum("bd,bds->bs", wy, cols)
        mean_x = sum_x / wx.sum(1, keepdim=True)
        mean_y = sum_y / wy.sum(1, keepdim=True)
        pooled = [mean_x, mean_y, (sum_x + sum_y) / 16.0, sum_x / 8.0, sum_y / 8.0]
        if self.config.conditional:
            wz = cm * (col_type == Z_COLUMN).to(cols.dtype)
            sum_z = torch.einsum("bd,bds->bs", wz, cols)
            pooled += [sum_z / wz.sum(1, keepdim=True).clamp_min(1.0), sum_z / 8.0]
        return torch.cat(pooled + [pair_emb, feats], dim=1)

    def predict(self, emb: Tensor, tau: Tensor | None = None) -> Tensor:
        """The head: embeddings -> estimates ``(B,)``, or quantiles ``(B, T)`` at ``tau``
        (default: the median) for ``mist_qr``."""
        if not self.is_quantile:
            # the statistics sit at the end of the embedding, / 10: [-2] the bias-corrected
            # Gaussian-copula (conditional) MI, else [-4] the one at the lower shrinkage
            anchor = None
            if self.config.anchor:
                anchor = emb[:, -2 if self.config.corrected_stat else -4] * 10.0
            return self.head(emb, anchor)                                     # (B,)
        if tau is None:
            tau = torch.full((1,), 0.5, dtype=emb.dtype, device=emb.device)
        return self.head(emb, tau)                                            # (B, T)

    def forward(self, values: Tensor, row_mask: Tensor, col_mask: Tensor, col_type: Tensor,
                tau: Tensor | None = None) -> Tensor:
        corr, feats = self.statistics(values, row_mask, col_mask, col_type)
        emb = self.embed_dataset(values, row_mask, col_mask, col_type, corr, feats)
        return self.predict(emb, tau)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
