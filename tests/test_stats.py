"""benchmarks.stats against hand-computed cases and against rliable's own formulas (via scipy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from benchmarks import stats


def test_iqm_drops_a_quarter_at_each_end_of_all_runs_pooled():
    # 8 runs pooled: drop 1, 2 and 7, 8 -> mean(3, 4, 5, 6).
    assert stats.iqm([[8, 1, 3, 2], [5, 7, 6, 4]]) == 4.5
    # Unequal run counts pool too: [10, 0, 1, 2] -> drop 0 and 10 -> mean(1, 2).
    assert stats.iqm([[10], [0, 1, 2]]) == 1.5
    # Fewer than 4 runs: nothing is cut, as in scipy.
    assert stats.iqm([[1, 2, 9]]) == 4.0


def test_mean_is_the_mean_of_task_means():
    assert stats.aggregate_mean([[10], [0, 1, 2]]) == 5.5


def test_optimality_gap_clips_scores_at_gamma():
    # min(score, 100): 50, 100, 100, 90 -> mean 85 -> gap 15.
    assert stats.optimality_gap([[50, 120], [100, 90]]) == 15.0
    assert stats.optimality_gap([[150, 101]]) == 0.0
    assert stats.optimality_gap([[0.5, 1.5]], gamma=1.0) == 0.25


def test_score_profile_counts_runs_strictly_above_tau():
    profile = stats.score_profile([[10, 50], [90, 100]], np.array([0.0, 50.0, 99.9, 100.0]))
    np.testing.assert_array_equal(profile, [1.0, 0.5, 0.25, 0.0])


def test_probability_of_improvement_counts_ties_half():
    # Task 1: pairs (1,2) (1,2) (2,2) (2,2) (3,2) (3,2) -> 0 0 .5 .5 1 1 -> 1/2. Task 2: 1.
    x, y = [[1, 2, 3], [3, 4]], [[2, 2], [1, 2]]
    assert stats.probability_of_improvement(x, y) == 0.75
    assert stats.probability_of_improvement(y, x) == 0.25
    with pytest.raises(ValueError, match="same tasks"):
        stats.probability_of_improvement(x, y[:1])


def test_metrics_equal_rliables_formulas_on_a_runs_by_tasks_matrix():
    """rliable's definitions, written with scipy as rliable.metrics does."""
    scores = np.random.default_rng(0).normal(70.0, 30.0, size=(5, 7))  # runs x tasks
    tasks = list(scores.T)
    assert np.isclose(stats.aggregate_mean(tasks), np.mean(np.mean(scores, axis=0)))
    assert np.isclose(stats.iqm(tasks), scipy.stats.trim_mean(scores, 0.25, axis=None))
    assert np.isclose(stats.optimality_gap(tasks), 100.0 - np.mean(np.minimum(scores, 100.0)))
    other = np.random.default_rng(1).normal(60.0, 30.0, size=(4, 7))
    expected = np.mean(
        [
            scipy.stats.mannwhitneyu(scores[:, m], other[:, m], alternative="greater")[0] / 20
            for m in range(7)
        ]
    )
    assert np.isclose(stats.probability_of_improvement(tasks, list(other.T)), expected)


def test_bootstrap_resamples_runs_within_each_task():
    """Task A = [0, 10], task B = [100, 110]. A resampled task mean is 0, 5 or 10 (prob 1/4,
    1/2, 1/4), B's the same plus 100, so the mean of task means is 50, 52.5, ..., 60 with
    probabilities 1/16, 4/16, 6/16, 4/16, 1/16: the 2.5 % and 97.5 % percentiles are 50 and 60.
    Pooling the runs instead could draw four B runs (mean 105): outside [50, 60]."""
    tasks = [[0.0, 10.0], [100.0, 110.0]]
    interval = stats.bootstrap_ci(stats.aggregate_mean, tasks, reps=4000, seed=0)
    assert (interval.point, interval.low, interval.high) == (55.0, 50.0, 60.0)
    replicates = stats.aggregate_mean(
        stats.stratified_resample(tasks, 40_000, np.random.default_rng(1))
    )
    values, counts = np.unique(replicates, return_counts=True)
    np.testing.assert_array_equal(values, [50.0, 52.5, 55.0, 57.5, 60.0])
    np.testing.assert_allclose(counts / 40_000, np.array([1, 4, 6, 4, 1]) / 16, atol=0.01)


def test_bootstrap_interval_of_one_task_with_two_runs():
    """Runs [0, 1]: resampled means 0, 0.5, 1 with probability 1/4, 1/2, 1/4 -> CI [0, 1]."""
    interval = stats.bootstrap_ci(stats.iqm, [[0.0, 1.0]], reps=2000, seed=3)
    assert (interval.point, interval.low, interval.high) == (0.5, 0.0, 1.0)


def test_bootstrap_of_two_score_sets_resamples_each_on_its_own():
    """X beats Y in every pair of every resample: P(X > Y) = 1 with a CI of [1, 1]."""
    x, y = [[5.0, 6.0, 7.0], [50.0]], [[1.0, 2.0], [10.0, 20.0]]
    interval = stats.bootstrap_ci(stats.probability_of_improvement, x, y, reps=500, seed=0)
    assert (interval.point, interval.low, interval.high) == (1.0, 1.0, 1.0)


def test_bootstrap_is_seeded_and_vector_statistics_get_one_interval_per_entry():
    tasks = [np.arange(5.0), np.arange(5.0) * 20.0, [3.0, 90.0, 40.0]]
    taus = np.linspace(0.0, 100.0, 11)

    def profile(t):
        return stats.score_profile(t, taus)

    first = stats.bootstrap_ci(profile, tasks, reps=300, seed=[7, 1])
    again = stats.bootstrap_ci(profile, tasks, reps=300, seed=[7, 1])
    other = stats.bootstrap_ci(profile, tasks, reps=300, seed=[7, 2])
    assert first.point.shape == first.low.shape == first.high.shape == (11,)
    np.testing.assert_array_equal(first.low, again.low)
    np.testing.assert_array_equal(first.high, again.high)
    assert not (np.array_equal(first.low, other.low) and np.array_equal(first.high, other.high))
    assert np.all(first.low <= first.point) and np.all(first.point <= first.high)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no tasks"):
        stats.iqm([])
    with pytest.raises(ValueError, match="at least one run"):
        stats.aggregate_mean([[1.0], []])
    with pytest.raises(ValueError, match="reps"):
        stats.bootstrap_ci(stats.iqm, [[1.0]], reps=0)
