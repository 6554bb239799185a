"""Configuration evidence: which trials count, each configuration's mean accuracy and the covariance of the means.

Every trial is scored on the same test images and each configuration has a few seeds, so the configuration
means are correlated (an easy image is easy for all of them) and each carries seed noise. With per-image
predictions the covariance is estimated from them: for configurations c and c', the cluster-robust covariance of
the means of their seed-averaged correctness with patients as the clusters (the shared-image part: films of one
patient are hard or easy together; clusters.mean_cov, which is (1/n) times the covariance over images when every
patient has one film), plus on the diagonal the seed variance left after the image-by-seed interaction is taken
out (a two-way ANOVA per configuration, pulled up toward the pooled value because three seeds give a noisy
variance). Without predictions only the seed spread of accuracies is known and the image dependence is not
modelled.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from sweep.analysis import clusters
from sweep.analysis.inputs import TrialSet
from sweep.analysis.tables import by_configuration
from sweep.configs.naming import CONFIG_KEYS

PRIOR_DF = 4.0   # how many degrees of freedom the pooled seed variance counts for against one configuration's


@dataclasses.dataclass
class Evidence:
    """Per configuration (C of them): identity, size, mean accuracy (fraction), seeds; cov (C, C) of the means."""

    configs: list[dict]
    sizes: np.ndarray
    means: np.ndarray
    seeds: np.ndarray
    cov: np.ndarray
    per_image: bool
    trial_ids: list[list[str]]

    def subset(self, keep: np.ndarray) -> "Evidence":
        idx = np.flatnonzero(keep)
        return Evidence([self.configs[i] for i in idx], self.sizes[idx], self.means[idx], self.seeds[idx],
                        self.cov[np.ix_(idx, idx)], self.per_image, [self.trial_ids[i] for i in idx])

    @property
    def seed_sd(self) -> np.ndarray:
        """Each configuration's seed-to-seed sd of accuracy implied by cov (fraction)."""
        return np.sqrt(np.diag(self.cov) * self.seeds)


def build(trials: TrialSet, size: str) -> Evidence:
    """The evidence of every non-collapsed configuration with a finite, positive `size`."""
    rows = trials.used
    rows = rows[rows[size].notna() & (rows[size] > 0)]
    groups = by_configuration(rows)
    configs = [{k: g.iloc[0][k] for k in CONFIG_KEYS} for g in groups]
    sizes = np.array([float(g[size].mean()) for g in groups])
    ids = [g["trial_id"].tolist() for g in groups]
    if not groups:
        return Evidence([], sizes, sizes, sizes.astype(int), np.zeros((0, 0)), trials.correct is not None, [])
    if trials.correct is not None:
        means, cov, seeds = _from_predictions([trials.correct.loc[i].to_numpy(float) for i in ids], trials.codes)
    else:
        means, cov, seeds = _from_accuracies([g[trials.accuracy].to_numpy(float) for g in groups],
                                             np.array([float(g[trials.n_column].mean()) for g in groups]))
    order = np.argsort(sizes, kind="stable")
    return Evidence([configs[i] for i in order], sizes[order], means[order], seeds[order],
                    cov[np.ix_(order, order)], trials.correct is not None, [ids[i] for i in order])


def _from_predictions(groups: list[np.ndarray], codes: np.ndarray | None = None):
    """groups[c]: (S_c, n) 0/1 correctness of configuration c's seeds on the same n images; codes: patient per image
    (None: each image its own patient)."""
    n = groups[0].shape[1]
    codes = np.arange(n) if codes is None else codes
    image_means = np.stack([g.mean(axis=0) for g in groups])
    shared = clusters.mean_cov(image_means, codes)
    excess, dfs = [], []
    for g in groups:
        s = g.shape[0]
        if s < 2:
            excess.append(0.0)
            dfs.append(0.0)
            continue
        seed_acc = g.mean(axis=1)
        resid = g - seed_acc[:, None] - g.mean(axis=0)[None, :] + g.mean()
        ms_res = np.sum(resid ** 2) / ((s - 1) * (n - 1))
        excess.append(np.var(seed_acc, ddof=1) - ms_res / n)   # seed variance beyond image-by-seed interaction
        dfs.append(s - 1.0)
    seeds = np.array([g.shape[0] for g in groups])
    means = image_means.mean(axis=1)
    seed_var = _shrunk(np.array(excess), np.array(dfs), _seed_scale(means))
    return means, shared + np.diag(seed_var / seeds), seeds


def _from_accuracies(groups: list[np.ndarray], test_n: np.ndarray):
    """groups[c]: seed accuracies of configuration c (no per-image data: images not modelled as shared)."""
    means = np.array([g.mean() for g in groups])
    dfs = np.array([len(g) - 1.0 for g in groups])
    raw = np.array([np.var(g, ddof=1) if len(g) > 1 else 0.0 for g in groups])
    binomial = means * (1 - means) / test_n
    seeds = np.array([len(g) for g in groups])
    return means, np.diag(np.maximum(_shrunk(raw, dfs, _seed_scale(means)), binomial) / seeds), seeds


def _seed_scale(means: np.ndarray) -> np.ndarray:
    """How a seed's effect shows at each accuracy: a shift on the logit scale moves accuracy by about m(1 - m),
    so seed variances are pooled as multiples of (m(1 - m))^2 (a configuration at 92% varies less than one at 65%)."""
    return np.maximum(means * (1 - means), 0.02) ** 2


def _shrunk(values: np.ndarray, dfs: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Each configuration's seed variance pulled up toward the pooled one at its scale (PRIOR_DF pseudo df), never
    down: three seeds often read a small variance by chance (the pull protects against that), but a configuration
    whose own seeds spread far more than the others' is an unstable one (issue 22's world has one per sweep, seed
    sd 5x the rest), and pulling it down made it an outlier the constant test took for a trend."""
    pooled = float(np.sum(values / scale * dfs) / dfs.sum()) if dfs.sum() > 0 else 0.0
    return np.maximum(np.maximum((dfs * values + PRIOR_DF * pooled * scale) / (dfs + PRIOR_DF), values), 0.0)
