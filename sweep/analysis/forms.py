"""Forms of accuracy against size, fitted by generalised least squares with a between-configuration variance.

Model for the configuration means m (C of them): m = X(b) @ coef + noise, noise ~ N(0, Sigma + tau^2 I), where
Sigma is the known image-and-seed covariance of the means (evidence.py) and tau^2 the variance of
configurations around the curve. Every form is linear in coef once the power law's exponent b is fixed, so
each form is a stack of design matrices (one per b on a grid) and tau is profiled on a grid: every
(design, tau) fit is closed-form GLS, and fitting a thousand bootstrap replicates is one tensor product.
"""
from __future__ import annotations

import dataclasses

import numpy as np

FORMS = ("constant", "linear", "log_linear", "power_law")
SLOPED = ("linear", "log_linear", "power_law")
# The forms the interval averages over. The log-linear is the power law's b -> 0 limit, but it must be there in its
# own right: with 6 configurations AICc's price for the exponent (k = 4 with tau) rules the power law out, and
# the line alone then carries every curve's interval (simulated, issue 22's world: 0% coverage of log-linear
# and saturating truths at 6 configurations without it).
AVERAGED = ("linear", "log_linear", "power_law")
EXPONENTS = np.geomspace(0.03, 3.0, 25)    # power-law b; a fit at either end is "at its bound"
TAUS = np.concatenate([[0.0], np.geomspace(5e-4, 0.5, 29)])   # between-configuration sd (accuracy fraction)
LOG2PI = float(np.log(2 * np.pi))
CHUNK = 256                                 # bootstrap replicates per tensor product (bounds memory)


def design(form: str, x: np.ndarray, b: float | None = None) -> np.ndarray:
    """The form's columns at scaled sizes x = N / N_ref (accuracy = design @ coef).

    constant: a. linear: a + c*x. log_linear: a + c*ln x. power_law: (1 - floor) - a*x^-b, i.e.
    error = floor + a*N^-b."""
    x = np.asarray(x, float)
    one = np.ones_like(x)
    if form == "constant":
        return one[:, None]
    if form == "linear":
        return np.stack([one, x], axis=1)
    if form == "log_linear":
        return np.stack([one, np.log(x)], axis=1)
    if form == "power_law":
        return np.stack([one, -np.power(x, -b)], axis=1)
    raise ValueError(f"unknown form {form!r}; choose from {FORMS}")


def exponents_of(form: str) -> np.ndarray:
    return EXPONENTS if form == "power_law" else np.array([np.nan])


def rows(form: str, x: np.ndarray) -> np.ndarray:
    """(D, R, k): the form's design rows at sizes x for every exponent on its grid."""
    return np.stack([design(form, x, b) for b in exponents_of(form)])


@dataclasses.dataclass
class Grid:
    """GLS of one form at every (exponent d, tau t); the pieces every later step reuses."""

    form: str
    designs: np.ndarray     # (D, C, k)
    coef_map: np.ndarray    # (D, T, k, C): coef = coef_map @ means
    coef_cov: np.ndarray    # (D, T, k, k)
    resid_map: np.ndarray   # (D, T, C, C): the GLS residual quadratic form r'V^-1 r = m' M m
    logdet_v: np.ndarray    # (T,)
    logdet_g: np.ndarray    # (D, T): log det X'V^-1 X, the restricted-likelihood term

    @property
    def n_params(self) -> int:
        """Parameters of the curve (the exponent counts for the power law); tau is one more."""
        return self.designs.shape[2] + (1 if self.form == "power_law" else 0)

    def neg2_loglik(self, means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ML, REML) -2 log-likelihoods, each (B, D, T), for means (B, C) or (C,)."""
        m = np.atleast_2d(means)
        quad = np.concatenate([np.einsum("bc,dtce,be->bdt", part, self.resid_map, part, optimize=True)
                               for part in np.array_split(m, max(1, len(m) // CHUNK))])
        ml = quad + self.logdet_v[None, None, :] + m.shape[1] * LOG2PI
        return ml, ml + self.logdet_g[None] - self.designs.shape[2] * LOG2PI


def build_grid(form: str, x: np.ndarray, cov: np.ndarray) -> Grid:
    """Closed-form GLS pieces of a form for scaled sizes x and noise covariance cov (C, C)."""
    designs = rows(form, x)
    v = cov[None] + (TAUS ** 2)[:, None, None] * np.eye(len(x))[None]        # (T, C, C)
    v_inv = np.linalg.inv(v)
    xtv = np.einsum("dck,tce->dtke", designs, v_inv)
    g = np.einsum("dtkc,dcj->dtkj", xtv, designs)
    g_inv = np.linalg.inv(g)
    coef_map = np.einsum("dtkj,dtjc->dtkc", g_inv, xtv)
    resid_map = v_inv[None] - np.einsum("dtkc,dtke->dtce", xtv, coef_map)
    resid_map = (resid_map + np.swapaxes(resid_map, -1, -2)) / 2
    return Grid(form, designs, coef_map, g_inv, resid_map, np.linalg.slogdet(v)[1], np.linalg.slogdet(g)[1])


def aicc(neg2_loglik: float | np.ndarray, k: int, n: int):
    """Akaike's criterion with the small-sample correction; infinite when n <= k + 1 (the form cannot be judged)."""
    penalty = 2 * k + (2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else np.inf)
    return neg2_loglik + penalty


@dataclasses.dataclass
class Fits:
    """Fits of one form to B replicates of the means: the exponent by maximum likelihood, tau by REML at it."""

    d: np.ndarray           # (B,) exponent index
    t: np.ndarray           # (B,) tau index (REML at the exponent)
    coef: np.ndarray        # (B, k)
    neg2_ml: np.ndarray     # (B,) maximised -2 log-likelihood
    aicc: np.ndarray        # (B,)


def fit(grid: Grid, means: np.ndarray) -> Fits:
    m = np.atleast_2d(means)
    ml, reml = grid.neg2_loglik(m)
    n, d_count, t_count = ml.shape
    flat = ml.reshape(n, -1)
    best = flat.argmin(axis=1)
    d = best // t_count
    t = reml[np.arange(n), d].argmin(axis=1)
    coef = np.einsum("bkc,bc->bk", grid.coef_map[d, t], m)
    neg2 = flat[np.arange(n), best]
    return Fits(d, t, coef, neg2, aicc(neg2, grid.n_params + 1, m.shape[1]))


def at_bound(grid: Grid, d: int) -> bool:
    """Whether a power-law fit put its exponent at an end of the grid (a step, or a log-linear in disguise)."""
    return grid.form == "power_law" and d in (0, len(EXPONENTS) - 1)


def values(grid: Grid, fits: Fits, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(estimates, standard errors), each (B, R), of linear targets target (D, R, k) at each replicate's fit."""
    chosen = target[fits.d]                                                   # (B, R, k)
    estimate = np.einsum("brk,bk->br", chosen, fits.coef)
    var = np.einsum("brk,bkj,brj->br", chosen, grid.coef_cov[fits.d, fits.t], chosen)
    return estimate, np.sqrt(np.maximum(var, 1e-30))
