"""Patient-cluster resampling: image-level when every patient has one film, wider when films cluster."""
import numpy as np

from sweep.analysis import clusters


def test_one_film_per_patient_reduces_to_the_image_level_covariance():
    values = np.random.default_rng(0).random((3, 40))
    codes = clusters.patient_codes([f"i{k}" for k in range(40)])
    assert np.allclose(clusters.mean_cov(values, codes), np.cov(values) / 40)


def test_images_without_a_patient_are_their_own_patient():
    codes = clusters.patient_codes(["a", "b", "c", "d"], {"a": "p1", "b": "p1", "c": ""})
    assert codes.tolist() == [0, 0, 1, 2]


def test_bootstrap_draws_whole_patients():
    codes = np.array([0, 0, 0, 1, 2, 2])
    weights = clusters.bootstrap_weights(codes, 200, np.random.default_rng(1))
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 4] == weights[:, 5]).all()
    assert (weights[:, [0, 3, 4]].sum(axis=1) == 3).all()   # 3 patients drawn per replicate


def test_clustered_films_widen_the_interval_to_the_truth():
    # 60 patients x 5 films, patient effect dominates: the naive image-level sd of the mean is ~2x too small
    rng = np.random.default_rng(2)
    sims, naive, clustered = [], [], []
    codes = np.repeat(np.arange(60), 5)
    for _ in range(300):
        patient = rng.normal(0, 1, 60)[codes]
        correct = (patient + rng.normal(0, 0.5, codes.size) > 0).astype(float)[None, :]
        sims.append(correct.mean())
        naive.append(np.sqrt(np.cov(correct) / correct.size))
        clustered.append(np.sqrt(clusters.mean_cov(correct, codes)[0, 0]))
    true_sd = np.std(sims)
    assert np.median(naive) < 0.6 * true_sd
    assert 0.8 * true_sd < np.median(clustered) < 1.2 * true_sd
