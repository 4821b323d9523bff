"""Gaussian mutual information from canonical correlations.

What it assumes
---------------
If ``(X, Y)`` is jointly Gaussian, ``I(X; Y) = -1/2 sum_i log(1 - rho_i^2)``
where ``rho_i`` are the canonical correlations, the singular values of
``R_XX^{-1/2} R_XY R_YY^{-1/2}``. For any other distribution this is the
mutual information of the Gaussian with the same correlation matrix: only the
linear (Gaussian) part of the dependence is measured. It is a lower bound on
the true value when the marginals are Gaussian; a non-linear dependence
(``Y = X^2``) can be missed entirely. The estimate is invariant to shifting
and rescaling each column (columns are standardised with
:func:`~mistmodel.estimators.base.standardize_columns`, at any magnitude).

Two forms
---------
*Unbiased* (no shrinkage). The plug-in value computed from the sample
correlation matrix is biased upwards, by roughly ``dx dy / (2 n)`` nats and
by far more when ``n`` is a small multiple of ``dx + dy``. For Gaussian data
the bias is known exactly: with ``S`` the sample covariance of ``p`` columns
from ``n`` rows, ``(n - 1) S`` is Wishart with ``n - 1`` degrees of freedom
and ``E[log det S] = log det Sigma + sum_{i=1..p} psi((n - i) / 2) +
p log(2 / (n - 1))``. The mutual information is ``1/2 (log det S_XX +
log det S_YY - log det S)``, so subtracting

    1/2 [B(dx) + B(dy) - B(dx + dy)],    B(p) = sum_{i=1..p} psi((n - i) / 2),

from the plug-in value gives an estimator that is exactly unbiased for
Gaussian data at every ``n > dx + dy + 1`` (the ``log(2 / (n - 1))`` terms
cancel). Being unbiased it can come out slightly negative when the
dependence is weak; it is not clipped.

*Shrunk* (Ledoit-Wolf). When ``n`` is close to or below ``dx + dy`` the
sample correlation matrix is (nearly) singular and the unbiased form is
undefined or very noisy. The correlation matrix is then shrunk towards the
identity, ``R_s = (1 - lambda) R + lambda I``, with ``lambda`` the Ledoit-Wolf
estimate of the optimal intensity (sklearn.covariance.ledoit_wolf_shrinkage).
Shrinking the joint matrix shrinks its blocks by the same amount, so ``R_s``
is a valid, positive definite correlation matrix for any ``lambda > 0``.
Shrinkage pulls the estimate towards 0: it is accurate for weak dependence
and underestimates strong dependence, badly so in high dimension.

``shrinkage="auto"`` (the default) takes the unbiased form from
``n >= 2 (dx + dy)`` and the shrunk one below. On dense and sparse Gaussians
with ``dx = dy`` from 2 to 8, the unbiased form has the smaller root mean
squared error from ``n = 2 (dx + dy)`` on whenever there is dependence (at
``n = 1.25 (dx + dy)`` already from ``dx = 8``), while the shrunk one is
better only for independent data. At ``n = 5000`` the unbiased form is within
1% of the truth up to ``dx = dy = 100``.

Conditional mutual information
------------------------------
:meth:`~mistmodel.estimators.base.Estimator.estimate_conditional` uses the
Gaussian partial form

    I(X; Y | Z) = 1/2 [log det R_XZ + log det R_YZ - log det R_Z - log det R_XYZ],

``R_AB`` the correlation matrix of the stacked columns of ``A`` and ``B``
(the column scales cancel, so correlations give the same value as
covariances). Each log-determinant of a ``p``-column block is biased by
``B(p)`` (plus ``p log(2 / (n - 1))``, which cancels), so the unbiased form
subtracts ``1/2 [B(dx + dz) + B(dy + dz) - B(dz) - B(dx + dy + dz)]``.
"auto" chooses between the unbiased and the shrunk form as for I(X; Y), with
``dx + dy + dz`` columns; the shrunk form shrinks the joint correlation
matrix of all three sides.

Intervals use the percentile bootstrap re-centred on the estimate
("replacement-centred", see :mod:`.base`) for the unbiased form, and the
bias-corrected one ("replacement-bc") for the shrunk and plug-in forms. The
bootstrap does not see the bias that shrinkage itself adds (a resample's
repeated rows change the shrinkage chosen), so the shrunk form's intervals can
lie wholly below the truth, and below 0; every shrunk-form interval whose shrinkage on
the sample is positive comes with a
:class:`~mistmodel.caller_warnings.ShrinkageBiasWarning`
(docs/estimators.md gives measured coverage).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma

from ..caller_warnings import ShrinkageBiasWarning, warn
from ..per_thread import PerThread
from .base import Estimator, TooFewRowsError, constant_columns, standardize_columns

__all__ = [
    "CCA",
    "canonical_correlations",
    "gaussian_bias",
    "gaussian_conditional_bias",
    "gaussian_conditional_mi",
]

MODES = ("auto", "unbiased", "ledoit-wolf")
#: "auto" uses the unbiased form from n >= AUTO_UNBIASED_RATIO * (dx + dy).
AUTO_UNBIASED_RATIO = 2


def _shrunk_correlation(z: np.ndarray, shrinkage: float | str) -> tuple[np.ndarray, float]:
    """Correlation matrix of the standardised columns ``z`` shrunk towards the identity."""
    n = z.shape[0]
    corr = (z.T @ z) / n
    if shrinkage == "ledoit-wolf":
        from sklearn.covariance import ledoit_wolf_shrinkage   # ~2 s to import: only when used
        lam = float(ledoit_wolf_shrinkage(z, assume_centered=True))
    else:
        lam = float(shrinkage)
    corr = (1.0 - lam) * corr
    corr[np.diag_indices_from(corr)] = 1.0
    return corr, lam


def canonical_correlations(
    x: np.ndarray, y: np.ndarray, shrinkage: float | str = "ledoit-wolf"
) -> tuple[np.ndarray, float]:
    """Canonical correlations (descending) and the shrinkage intensity used.

    ``x`` and ``y`` must be validated 2-D float arrays without constant
    columns (see :func:`mistmodel.estimators.base.check_xy`); ``shrinkage``
    is "ledoit-wolf" or a number in [0, 1].
    """
    dx = x.shape[1]
    z = np.hstack([standardize_columns(x, "x"), standardize_columns(y, "y")])
    corr, lam = _shrunk_correlation(z, shrinkage)
    rxx, ryy, rxy = corr[:dx, :dx], corr[dx:, dx:], corr[:dx, dx:]
    try:
        lx = np.linalg.cholesky(rxx)
        ly = np.linalg.cholesky(ryy)
    except np.linalg.LinAlgError as exc:
        # a TooFewRowsError: a bootstrap replicate with too few distinct rows for its
        # columns is left out, not taken for the user's sample
        raise TooFewRowsError(
            "the correlation matrix of x or y is singular (collinear columns, or "
            f"n <= dx + dy without shrinkage; shrinkage used: {lam:g}); use "
            "shrinkage='ledoit-wolf' or a positive shrinkage"
        ) from exc
    # Whitened cross-correlation L_x^{-1} R_xy L_y^{-T}.
    m = np.linalg.solve(lx, rxy)
    m = np.linalg.solve(ly, m.T).T
    rho = np.linalg.svd(m, compute_uv=False)
    return np.clip(rho, 0.0, 1.0), lam


def _logdet_shift(n: int, p: int) -> float:
    """``B(p) = sum_{i=1..p} psi((n - i) / 2)``: the bias of the log-determinant of a
    ``p``-column sample covariance of ``n`` Gaussian rows, less ``p log(2 / (n - 1))``."""
    return float(np.sum(digamma((n - np.arange(1, p + 1)) / 2.0)))


def gaussian_bias(n: int, dx: int, dy: int) -> float:
    """Expected excess of the unshrunk plug-in Gaussian MI over the truth, for
    jointly Gaussian data of ``n`` rows (exact; needs ``n > dx + dy``)."""
    return 0.5 * (_logdet_shift(n, dx) + _logdet_shift(n, dy) - _logdet_shift(n, dx + dy))


def gaussian_conditional_bias(n: int, dx: int, dy: int, dz: int) -> float:
    """Expected excess of the unshrunk plug-in Gaussian ``I(X; Y | Z)`` over the truth,
    for jointly Gaussian data of ``n`` rows (exact; needs ``n > dx + dy + dz``)."""
    return 0.5 * (_logdet_shift(n, dx + dz) + _logdet_shift(n, dy + dz)
                  - _logdet_shift(n, dz) - _logdet_shift(n, dx + dy + dz))


def _logdet(corr: np.ndarray, columns: np.ndarray, lam: float) -> float:
    try:
        chol = np.linalg.cholesky(corr[np.ix_(columns, columns)])
    except np.linalg.LinAlgError as exc:
        raise ValueError(
            "the correlation matrix of x, y and z is singular (collinear columns, or "
            f"n <= dx + dy + dz without shrinkage; shrinkage used: {lam:g}); use "
            "shrinkage='ledoit-wolf' or a positive shrinkage"
        ) from exc
    return 2.0 * float(np.sum(np.log(np.diag(chol))))


def gaussian_conditional_mi(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, shrinkage: float | str = "ledoit-wolf"
) -> tuple[float, float]:
    """Plug-in Gaussian ``I(X; Y | Z)`` (no bias correction) and the shrinkage used.

    Inputs as for :func:`canonical_correlations`, plus ``z`` (n, dz); the value is
    ``1/2 [log det R_XZ + log det R_YZ - log det R_Z - log det R_XYZ]`` of the
    (shrunk) correlation matrix. Infinite when X or Y is a linear function of the rest.
    """
    dx, dy, dz = x.shape[1], y.shape[1], z.shape[1]
    stacked = np.hstack([standardize_columns(x, "x"), standardize_columns(y, "y"),
                         standardize_columns(z, "z")])
    corr, lam = _shrunk_correlation(stacked, shrinkage)
    xs, ys, zs = np.arange(dx), np.arange(dx, dx + dy), np.arange(dx + dy, dx + dy + dz)
    logdet_z = _logdet(corr, zs, lam)
    logdet_xz = _logdet(corr, np.concatenate([xs, zs]), lam)
    logdet_yz = _logdet(corr, np.concatenate([ys, zs]), lam)
    try:
        logdet_all = _logdet(corr, np.arange(dx + dy + dz), lam)
    except ValueError:
        logdet_all = -np.inf     # singular only jointly: a deterministic relation
    return 0.5 * (logdet_xz + logdet_yz - logdet_z - logdet_all), lam


class CCA(Estimator):
    """Gaussian-assumption mutual information from canonical correlations.

    Measures only the Gaussian (linear) part of the dependence; see the module
    docs for what that means and for the two forms.

    Parameters
    ----------
    shrinkage
        "auto" (default): the unbiased form from ``n >= 2 (dx + dy)``, the
        Ledoit-Wolf shrunk form below. "unbiased": always the unbiased form
        (needs ``n > dx + dy + 1``). "ledoit-wolf": always the shrunk form.
        A number in [0, 1]: that fixed shrinkage without bias correction (0
        gives the plain plug-in estimate: infinite when a canonical
        correlation is 1, and a clear error when the correlation matrix of x
        or of y alone is singular).
    seed
        Unused (the estimate is deterministic); kept for a uniform interface.
    """

    name = "CCA"
    bootstrap = "replacement-bc"

    #: What the calling thread's latest estimate used.
    _info = PerThread(dict)

    def __init__(self, shrinkage: float | str = "auto", seed: int = 0) -> None:
        if shrinkage not in MODES:
            try:
                value = float(shrinkage)
            except (TypeError, ValueError):
                value = float("nan")
            if isinstance(shrinkage, bool) or not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"shrinkage must be one of {', '.join(map(repr, MODES))} or a number "
                    f"in [0, 1]; got {shrinkage!r}"
                )
            shrinkage = value
        self.shrinkage = shrinkage
        self.seed = int(seed)

    def settings(self) -> dict[str, Any]:
        return {"shrinkage": self.shrinkage, "seed": self.seed}

    @property
    def min_rows(self) -> int:
        return 3

    def form(self, n: int, dx: int, dy: int) -> str:
        """"unbiased" or "shrunk": the form used for ``n`` rows and ``dx + dy`` columns."""
        if self.shrinkage == "unbiased":
            return "unbiased"
        if self.shrinkage == "auto" and n >= AUTO_UNBIASED_RATIO * (dx + dy):
            return "unbiased"
        return "shrunk"

    def bootstrap_scheme(self, x: np.ndarray, y: np.ndarray) -> str:
        """The class's scheme ("replacement-bc"), except "replacement-centred" for the
        unbiased form: its bias is already removed, so the bootstrap's estimate of it
        must not be subtracted a second time."""
        if (self.bootstrap == "replacement-bc"
                and self.form(x.shape[0], x.shape[1], y.shape[1]) == "unbiased"):
            return "replacement-centred"
        return self.bootstrap

    def _bootstrap_values(self, x: np.ndarray, y: np.ndarray, n_boot: int, seed: int,
                          center: float | None) -> np.ndarray:
        values = super()._bootstrap_values(x, y, n_boot, seed, center)
        # the form of the sample the estimate reads: its constant columns dropped
        xk, yk = (np.delete(a, constant_columns(a), axis=1) for a in (x, y))
        dx, dy = xk.shape[1], yk.shape[1]
        if self.form(x.shape[0], dx, dy) != "shrunk" or self.shrinkage == 0.0 or not dx * dy:
            return values
        lam = (float(self.shrinkage) if not isinstance(self.shrinkage, str)
               else canonical_correlations(xk, yk, "ledoit-wolf")[1])
        if lam > 0.0:
            warn(
                f"CCA: at n = {x.shape[0]} with {dx} + {dy} columns the estimate takes the "
                f"shrunk form (shrinkage {lam:.3g} on this sample), and its bootstrap "
                "interval does not account for the bias the "
                "shrinkage adds: with strong dependence spread over many columns it can lie "
                "wholly below the MI (8 + 8 columns, 8 pairs at correlation 0.5, n = 24: 0 "
                "of 60 covered the MI of 1.15 nats; docs/estimators.md). "
                "shrinkage='unbiased' (n > dx + dy + 1) gives an interval that covers it, "
                "far wider", ShrinkageBiasWarning)
        return values

    def _estimate(self, x: np.ndarray, y: np.ndarray, seed: int) -> float:
        n, dx, dy = x.shape[0], x.shape[1], y.shape[1]
        form = self.form(n, dx, dy)
        if form == "unbiased":
            if n <= dx + dy + 1:
                raise ValueError(
                    f"CCA(shrinkage='unbiased') needs n > dx + dy + 1 rows; got n = {n} "
                    f"with dx + dy = {dx + dy}; use shrinkage='auto' or 'ledoit-wolf'"
                )
            rho, lam = canonical_correlations(x, y, 0.0)
            bias = gaussian_bias(n, dx, dy)
        else:
            shrink = "ledoit-wolf" if isinstance(self.shrinkage, str) else self.shrinkage
            rho, lam = canonical_correlations(x, y, shrink)
            bias = 0.0
        self._info = {
            "form_used": form,
            "shrinkage_used": lam,
            "bias_correction": bias,
            "canonical_correlations": [float(r) for r in rho],
        }
        with np.errstate(divide="ignore"):
            value = -0.5 * np.sum(np.log1p(-(rho**2))) - bias
        return float(value)

    def _estimate_conditional(self, x: np.ndarray, y: np.ndarray, z: np.ndarray,
                              seed: int) -> float:
        n, dx, dy, dz = x.shape[0], x.shape[1], y.shape[1], z.shape[1]
        form = self.form(n, dx, dy + dz)
        if form == "unbiased":
            if n <= dx + dy + dz + 1:
                raise ValueError(
                    f"CCA(shrinkage='unbiased') needs n > dx + dy + dz + 1 rows; got n = {n} "
                    f"with dx + dy + dz = {dx + dy + dz}; use shrinkage='auto' or 'ledoit-wolf'"
                )
            value, lam = gaussian_conditional_mi(x, y, z, 0.0)
            bias = gaussian_conditional_bias(n, dx, dy, dz)
        else:
            shrink = "ledoit-wolf" if isinstance(self.shrinkage, str) else self.shrinkage
            value, lam = gaussian_conditional_mi(x, y, z, shrink)
            bias = 0.0
        self._info = {"form_used": form, "shrinkage_used": lam, "bias_correction": bias}
        return float(value - bias)

    def _run_info(self) -> dict[str, Any]:
        return dict(self._info)
