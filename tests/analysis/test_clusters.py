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


def _clustered_films(rng, n_patients=60, films=5):
    """0/1 correctness of 3 seeds on films of patients whose effect dominates (true mean difference 0 between halves)."""
    codes = np.repeat(np.arange(n_patients), films)
    from sweep.analysis.world import clustered_correctness

    return codes, clustered_correctness(rng, np.zeros(3), codes, film_sd=0.3, patient_sd=2.0)


def test_configuration_means_carry_the_patient_variance_the_image_level_estimate_misses():
    from sweep.analysis import evidence

    rng = np.random.default_rng(3)
    means, clustered, naive = [], [], []
    for _ in range(200):
        codes, correct = _clustered_films(rng)
        means.append(correct.mean())
        clustered.append(evidence._from_predictions([correct.astype(float)], codes)[1][0, 0])
        naive.append(evidence._from_predictions([correct.astype(float)], np.arange(codes.size))[1][0, 0])
    true_var = np.var(means)
    assert np.median(naive) < 0.6 * true_var
    assert 0.7 * true_var < np.median(clustered) < 1.4 * true_var


def test_paired_intervals_over_patients_cover_where_image_resampling_does_not():
    from sweep.analysis import shift

    rng = np.random.default_rng(4)
    naive = clustered = 0
    runs = 120
    for i in range(runs):
        codes, correct = _clustered_films(rng)
        difference = correct - 0.5   # population accuracy over new patients is 0.5 (logits symmetric about 0)
        lo, hi = shift.paired_interval(difference, seed=i, n_boot=300)
        naive += lo <= 0 <= hi
        lo, hi = shift.paired_interval(difference, seed=i, n_boot=300, codes=codes)
        clustered += lo <= 0 <= hi
    assert naive / runs < 0.75 and clustered / runs >= 0.8, (naive, clustered)


def test_explanation_share_intervals_widen_when_films_share_a_patient():
    from sweep.explain import scores

    rng = np.random.default_rng(5)
    patient = np.repeat(rng.normal(0.5, 0.2, 10), 4)
    values = list(patient + rng.normal(0, 0.02, 40))
    _, lo_i, hi_i, _ = scores.bootstrap_mean(values)
    _, lo_p, hi_p, _ = scores.bootstrap_mean(values, groups=[f"p{k // 4}" for k in range(40)])
    assert hi_p - lo_p > 1.5 * (hi_i - lo_i)
