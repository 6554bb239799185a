"""The realistic test world of the calibration simulators: patients with several films, effects on the logit scale.

Real test sets hold a few films per patient (cpu-real-dev: 147 films of 96 patients), and a patient's films are
easy or hard together. A simulated test set draws patients with 1-4 films each; every trial of a simulated sweep
scores the same films, and a film is right with probability sigmoid(trial logit + film effect + patient effect).
"""
from __future__ import annotations

import numpy as np


def draw_patients(rng: np.random.Generator, n_patients: int = 170, films: tuple[int, int] = (1, 4)) -> np.ndarray:
    """Patient code (0..n_patients-1) of every film: each patient has a uniform number of films in [films[0],
    films[1]] (170 patients with 1-4 films: ~425 films)."""
    counts = rng.integers(films[0], films[1] + 1, size=n_patients)
    return np.repeat(np.arange(n_patients), counts)


def clustered_correctness(rng: np.random.Generator, trial_logits, codes, *, film_sd: float = 0.5,
                          patient_sd: float = 0.7) -> np.ndarray:
    """(T, n) 0/1: whether each of T trials gets each of n films right, on one shared test set.

    trial_logits: (T,) each trial's logit (its configuration's offset plus its seed's effect), or (T, n) when it
    varies by film. One film effect N(0, film_sd) per film and one patient effect N(0, patient_sd) per patient are
    drawn for the test set and shared by every trial; each (trial, film) outcome is then an independent Bernoulli."""
    codes = np.asarray(codes)
    n = len(codes)
    film = rng.normal(0.0, film_sd, n)
    patient = rng.normal(0.0, patient_sd, int(codes.max()) + 1 if n else 0)[codes]
    logits = np.asarray(trial_logits, float)
    logits = logits[:, None] if logits.ndim == 1 else logits
    return (rng.random((logits.shape[0], n)) < 1 / (1 + np.exp(-(logits + film + patient)))).astype(np.int8)
