"""The test set of a realistic sweep, simulated: patients with several films each, correctness shared through them.

A real test split holds a few hundred films from fewer patients (cpu-real-dev: 147 films of 96 patients, up to 7
each). Whether a model gets a film right depends on the model (its configuration and seed: one logit per trial),
on the patient (some lungs are hard for every model) and on the film itself; the last two are shared by every
trial of a sweep, since every trial scores the same films. On the logit scale, film and patient effects are
normal with the given sds (defaults: the world of issue 22, film 0.5, patient 0.7).
"""
from __future__ import annotations

import numpy as np


def draw_patients(rng: np.random.Generator, n_patients: int = 170, films: tuple[int, int] = (1, 4)) -> np.ndarray:
    """Patient code per film (0..n_patients-1, each patient's films together): films per patient uniform in
    films[0]..films[1] (170 patients of 1-4 films: ~425 films)."""
    counts = rng.integers(films[0], films[1] + 1, size=n_patients)
    return np.repeat(np.arange(n_patients), counts)


def clustered_correctness(rng: np.random.Generator, trial_logits, codes: np.ndarray, *, film_sd: float = 0.5,
                          patient_sd: float = 0.7) -> np.ndarray:
    """(T, n) 0/1: trial t gets film i right with probability sigmoid(trial_logits[t] + patient[codes[i]] + film[i]).

    trial_logits: (T,) one logit per trial (or (T, n) to give a trial a per-film part too). The patient and film
    effects are drawn once and shared by every trial, as the films of one test split are."""
    codes = np.asarray(codes)
    logits = np.asarray(trial_logits, float)
    if logits.ndim == 1:
        logits = logits[:, None]
    patient = rng.normal(0.0, patient_sd, int(codes.max()) + 1 if codes.size else 0)
    film = rng.normal(0.0, film_sd, codes.size)
    p = 1.0 / (1.0 + np.exp(-(logits + patient[codes][None, :] + film[None, :])))
    return (rng.random(p.shape) < p).astype(np.int8)
