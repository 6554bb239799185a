"""Synthetic acquisition sites: which site makes each synthetic image, and what a site does to its films.

Image i keeps its class (i % K, so the classes stay balanced); its site is drawn, from a random stream of its own,
with probability P(site | class) proportional to the site's share times its class mix. Sites whose class mixes
differ make their habits (a burnt-in marker, a brightness offset, noise) predictive of the class, as a hospital
that sends most of the positive films makes its film style a shortcut.
"""
from __future__ import annotations

import zlib
from typing import Sequence

import numpy as np

from data.spec import DataSpec, SiteSpec

SITE_STREAM = 0x517E  # the site's random stream: (seed, index, SITE_STREAM), apart from the image's own
EXTERNAL_START = 100_000_000  # external synthetic sets draw images from here on: never the sweep's own images


def per_class(values: Sequence[float] | None, n_classes: int, what: str) -> np.ndarray:
    """One value per class from one value (every class) or one per class."""
    arr = np.asarray(values if values is not None else (1.0,), np.float64).reshape(-1)
    if arr.size == 1:
        arr = np.full(n_classes, float(arr[0]))
    if arr.size != n_classes:
        raise ValueError(f"{what} has {arr.size} values but there are {n_classes} classes")
    return arr


def check_site(site: SiteSpec | None, n_classes: int, what: str = "site") -> None:
    """Raise ValueError naming the site and field that cannot work."""
    if site is None:
        raise ValueError(f"{what} needs a site (a SiteSpec)")
    where = f"{what} {site.name!r}"
    rates = per_class(site.marker_rate, n_classes, f"{where} marker_rate")
    if np.any((rates < 0) | (rates > 1)):
        raise ValueError(f"{where}: marker_rate values must be probabilities in [0, 1], got {tuple(rates)}")
    mix = per_class(site.class_mix, n_classes, f"{where} class_mix")
    if np.any(mix < 0) or mix.sum() <= 0 or site.share <= 0:
        raise ValueError(f"{where}: share and class_mix must be positive, got {site.share}, {tuple(mix)}")
    if site.noise < 0 or not -1 < site.intensity_shift < 1:
        raise ValueError(f"{where}: noise must be >= 0 and intensity_shift in (-1, 1), got {site.noise}, "
                         f"{site.intensity_shift}")


def check_sites(spec: DataSpec) -> None:
    """A synthetic DataSpec's sites: each valid, distinct names, every class made by some site, and no class-level
    marker_rate/intensity_shift beside them (a site says what its films get)."""
    if not spec.sites:
        return
    if spec.marker_rate is not None or spec.intensity_shift is not None:
        raise ValueError("give markers and brightness per site (SiteSpec.marker_rate, intensity_shift) when the data "
                         "has sites; leave the data's marker_rate and intensity_shift unset")
    names = [s.name for s in spec.sites]
    if len(set(names)) != len(names):
        raise ValueError(f"site names must be distinct, got {names}")
    for site in spec.sites:
        check_site(site, len(spec.classes), "site")
    probs = site_probabilities(spec.sites, len(spec.classes))
    if np.any(~np.isfinite(probs)):
        raise ValueError(f"no site makes images of some class of {spec.classes}: check the sites' class_mix")


def site_probabilities(sites: Sequence[SiteSpec], n_classes: int) -> np.ndarray:
    """(sites, classes) P(site | class): share x class mix (each mix normalised), normalised over sites."""
    weights = np.stack([s.share * (m := per_class(s.class_mix, n_classes, s.name)) / m.sum() for s in sites])
    with np.errstate(invalid="ignore", divide="ignore"):
        return weights / weights.sum(axis=0, keepdims=True)


def site_of(seed: int, index: int, label: int, probs: np.ndarray) -> int:
    """The site (row of probs) that makes image `index` of class `label`."""
    u = np.random.default_rng((seed, index, SITE_STREAM)).random()
    return int(min(np.searchsorted(np.cumsum(probs[:, label]), u, side="right"), len(probs) - 1))


def site_noise(seed: int, index: int, shape: tuple[int, int], sd: float) -> np.ndarray:
    """The site's extra white noise for image `index` (drawn after its site, from the same stream)."""
    rng = np.random.default_rng((seed, index, SITE_STREAM))
    rng.random()
    return sd * rng.standard_normal(shape).astype(np.float32)


def external_start(name: str) -> int:
    """First image index of the external synthetic set NAME (a distinct block per name)."""
    return EXTERNAL_START + (zlib.crc32(name.encode()) % 1000) * 1_000_000
