"""Tests of helpers.stats against scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from helpers.stats import (
    ALL_ORGANS,
    format_mean_sd,
    spearman,
    summary,
    surface_summary,
    table2,
    table3,
    table4,
    wilcoxon_paired,
)

APPROACHES = ["caudal", "mid", "cranial"]


def _rows(organ, approach, negatives, dice_by_scan, volumes=None):
    """Rows of the tidy metrics table for one organ, approach and prompt setting."""
    volumes = volumes or {}
    return [
        {
            "scan_id": scan,
            "organ": organ,
            "approach": approach,
            "negatives": negatives,
            "dice": d,
            "gt_voxels": volumes.get(scan, 1000 + i * 137),
        }
        for i, (scan, d) in enumerate(dice_by_scan.items())
    ]


def _scans(n, start=0):
    return [f"s{i:03d}" for i in range(start, start + n)]


@pytest.fixture
def metrics() -> pd.DataFrame:
    """Synthetic metrics: organ 'a' with 6 and organ 'b' with 8 scans, some unpaired.

    Organ a: caudal - mid > 0 for all six pairs (distinct) -> exact p = 2/64 = 0.03125,
    between 0.05/3 and 0.05. Organ b: caudal - cranial > 0 for all eight pairs -> p =
    2/256 = 0.0078 < 0.05/3.
    """
    rng = np.random.default_rng(42)
    rows = []
    scans_a = _scans(6)
    caudal_a = dict(zip(scans_a, [0.90, 0.85, 0.80, 0.88, 0.70, 0.95], strict=True))
    mid_a = {s: v - 0.01 * (i + 1) for i, (s, v) in enumerate(caudal_a.items())}
    cranial_a = dict(zip(scans_a, rng.uniform(0.5, 0.9, 6), strict=True))
    rows += _rows("a", "caudal", True, caudal_a)
    rows += _rows("a", "mid", True, mid_a)
    rows += _rows("a", "cranial", True, cranial_a)
    # an unpaired scan: caudal only
    rows += _rows("a", "caudal", True, {"s900": 0.10})
    scans_b = _scans(8, start=10)
    caudal_b = dict(zip(scans_b, rng.uniform(0.6, 0.9, 8), strict=True))
    cranial_b = {s: v - 0.02 * (i + 1) for i, (s, v) in enumerate(caudal_b.items())}
    mid_b = dict(zip(scans_b[:7], rng.uniform(0.4, 0.9, 7), strict=True))  # one missing
    rows += _rows("b", "caudal", True, caudal_b)
    rows += _rows("b", "mid", True, mid_b)
    rows += _rows("b", "cranial", True, cranial_b)
    # runs without negative prompts (caudal): lower Dice, one extra unpaired scan
    without_a = {s: v - 0.05 - 0.01 * i for i, (s, v) in enumerate(caudal_a.items())}
    rows += _rows("a", "caudal", False, without_a)
    rows += _rows("a", "caudal", False, {"s901": 0.30})
    rows += _rows("b", "caudal", False, dict(zip(scans_b, rng.uniform(0.5, 0.9, 8), strict=True)))
    # an unrelated organ the caller does not ask for
    rows += _rows("z", "caudal", True, {"s000": 0.0})
    return pd.DataFrame(rows)


def _dice(df, organ, approach, negatives=True) -> pd.Series:
    sel = df[(df.organ == organ) & (df.approach == approach) & (df.negatives == negatives)]
    return sel.set_index("scan_id")["dice"]


@pytest.fixture
def one_scan() -> pd.DataFrame:
    """Like the embedded sample: a single scan."""
    rows = []
    for approach, d in zip(APPROACHES, [0.8, 0.7, 0.6], strict=True):
        rows += _rows("liver", approach, True, {"only": d}, {"only": 5000})
    rows += _rows("liver", "caudal", False, {"only": 0.75}, {"only": 5000})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- summary


def test_summary_known_values():
    s = summary([1.0, 2.0, 3.0, 4.0, float("nan")])
    assert s["n"] == 4
    assert s["mean"] == pytest.approx(2.5)
    assert s["sd"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s["median"] == pytest.approx(2.5)
    assert s["note"] == ""


def test_summary_bootstrap_reproducible_and_contains_mean():
    values = np.random.default_rng(1).uniform(0, 1, 40)
    first = summary(values, seed=5)
    assert first == summary(values, seed=5)
    assert first["ci_low"] < first["mean"] < first["ci_high"]
    assert values.min() <= first["ci_low"] and first["ci_high"] <= values.max()
    other = summary(values, seed=6)
    assert (other["ci_low"], other["ci_high"]) != (first["ci_low"], first["ci_high"])
    narrow = summary(values, seed=5, ci=0.5)
    assert first["ci_low"] < narrow["ci_low"] < narrow["ci_high"] < first["ci_high"]


def test_summary_bootstrap_percentile_definition():
    values = np.array([0.1, 0.4, 0.5, 0.9, 0.3])
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, 5, size=(2000, 5))].mean(axis=1)
    s = summary(values, seed=0)
    assert (s["ci_low"], s["ci_high"]) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def test_summary_one_and_zero_values():
    one = summary([0.7])
    assert one["n"] == 1 and one["mean"] == 0.7 and one["median"] == 0.7
    assert math.isnan(one["sd"]) and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"])
    assert one["note"].startswith("n/a")
    zero = summary([])
    assert zero["n"] == 0 and math.isnan(zero["mean"]) and zero["note"] == "n/a: 0 values"


def test_summary_rejects_bad_ci():
    with pytest.raises(ValueError, match="ci"):
        summary([1.0, 2.0], ci=1.5)


# ---------------------------------------------------------------- wilcoxon


def test_wilcoxon_equals_scipy_and_pairs_by_index():
    rng = np.random.default_rng(3)
    scans = _scans(12)
    a = pd.Series(rng.uniform(0, 1, 12), index=scans)
    b = pd.Series(rng.uniform(0, 1, 12), index=scans)
    expected = sps.wilcoxon(a.to_numpy(), b.to_numpy())
    # shuffle b, add unpaired scans to both and a NaN pair
    b_mixed = pd.concat([b.sample(frac=1, random_state=0), pd.Series({"x1": 0.2, "x2": 0.9})])
    a_mixed = pd.concat([a, pd.Series({"y1": 0.5, "nanpair": np.nan})])
    b_mixed["nanpair"] = 0.4
    stat, p, n, note = wilcoxon_paired(a_mixed, b_mixed)
    assert (n, note) == (12, "")
    assert stat == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)
    stat_rev, p_rev, _, _ = wilcoxon_paired(b_mixed, a_mixed)
    assert (stat_rev, p_rev) == pytest.approx((stat, p))


def test_wilcoxon_exact_hand_value():
    a = pd.Series([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], index=_scans(6))
    b = a - np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    stat, p, n, note = wilcoxon_paired(a, b)
    assert (stat, n, note) == (0.0, 6, "")
    assert p == pytest.approx(2 / 2**6)


def test_wilcoxon_too_few_pairs_is_na():
    a = pd.Series([0.5], index=["only"])
    b = pd.Series([0.4, 0.3], index=["only", "other"])
    stat, p, n, note = wilcoxon_paired(a, b)
    assert math.isnan(stat) and math.isnan(p)
    assert n == 1
    assert note == "n/a: 1 paired case (< 5)"
    _, p3, n3, note3 = wilcoxon_paired(a, b, min_pairs=1)
    assert n3 == 1 and not math.isnan(p3) and note3 == ""


def test_wilcoxon_all_zero_differences_is_na():
    a = pd.Series([0.1, 0.2, 0.3, 0.4, 0.5], index=_scans(5))
    stat, p, n, note = wilcoxon_paired(a, a.copy())
    assert math.isnan(stat) and math.isnan(p) and n == 5
    assert note.startswith("n/a") and "zero" in note


def test_wilcoxon_duplicate_index_raises():
    a = pd.Series([0.1, 0.2], index=["s1", "s1"])
    with pytest.raises(ValueError, match="duplicate"):
        wilcoxon_paired(a, a)


# ---------------------------------------------------------------- spearman


def test_spearman_equals_scipy_and_drops_nan():
    rng = np.random.default_rng(4)
    x = rng.uniform(0, 1, 20)
    y = x + rng.normal(0, 0.3, 20)
    expected = sps.spearmanr(x, y)
    rs, p, n, note = spearman(np.append(x, np.nan), np.append(y, 1.0))
    assert (n, note) == (20, "")
    assert rs == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_spearman_na_cases():
    rs, p, n, note = spearman([1.0, 2.0], [3.0, 1.0])
    assert math.isnan(rs) and math.isnan(p) and n == 2 and note == "n/a: 2 cases (< 3)"
    rs, p, n, note = spearman([1.0, 2.0, 3.0], [0.5, 0.5, 0.5])
    assert math.isnan(rs) and math.isnan(p) and n == 3 and "y constant" in note


def test_spearman_length_mismatch():
    with pytest.raises(ValueError, match="length"):
        spearman([1, 2, 3], [1, 2])


# ---------------------------------------------------------------- table 2


def test_table2_descriptive(metrics):
    desc, _ = table2(metrics, ["a", "b"], APPROACHES, n_boot=200)
    assert list(desc.columns) == [
        "organ", "approach", "n", "mean", "sd", "ci_low", "ci_high", "note",
    ]  # fmt: skip
    assert list(zip(desc.organ, desc.approach)) == [(o, a) for o in "ab" for a in APPROACHES]
    row = desc[(desc.organ == "a") & (desc.approach == "caudal")].iloc[0]
    caudal_a = _dice(metrics, "a", "caudal")  # 7 scans incl. the unpaired one
    assert row.n == 7
    assert row["mean"] == pytest.approx(caudal_a.mean())
    assert row.sd == pytest.approx(caudal_a.std(ddof=1))
    assert row.ci_low < row["mean"] < row.ci_high
    assert desc[(desc.organ == "b") & (desc.approach == "mid")].n.item() == 7


def test_table2_tests_equal_scipy_and_bonferroni(metrics):
    _, tests = table2(metrics, ["a", "b"], APPROACHES, n_boot=50)
    assert list(tests.columns) == [
        "organ", "comparison", "n_pairs", "statistic", "p_value", "significant", "note",
    ]  # fmt: skip
    assert list(tests.comparison[:3]) == ["caudal_vs_mid", "caudal_vs_cranial", "mid_vs_cranial"]
    for organ in ["a", "b"]:
        for first, second in [("caudal", "mid"), ("caudal", "cranial"), ("mid", "cranial")]:
            x, y = _dice(metrics, organ, first), _dice(metrics, organ, second)
            common = x.index.intersection(y.index)
            expected = sps.wilcoxon(x[common].to_numpy(), y[common].to_numpy())
            pair = f"{first}_vs_{second}"
            row = tests[(tests.organ == organ) & (tests.comparison == pair)].iloc[0]
            assert row.n_pairs == len(common)
            assert row.p_value == pytest.approx(expected.pvalue)
            assert row.statistic == pytest.approx(expected.statistic)
    a_cm = tests[(tests.organ == "a") & (tests.comparison == "caudal_vs_mid")].iloc[0]
    b_cc = tests[(tests.organ == "b") & (tests.comparison == "caudal_vs_cranial")].iloc[0]
    assert a_cm.n_pairs == 6 and a_cm.p_value == pytest.approx(0.03125)
    assert not pd.isna(a_cm.significant) and not a_cm.significant  # 0.031 >= 0.05/3
    assert b_cc.p_value == pytest.approx(2 / 256) and bool(b_cc.significant)
    _, uncorrected = table2(metrics, ["a"], APPROACHES, n_comparisons=1, n_boot=50)
    assert bool(uncorrected.significant.iloc[0])  # 0.031 < 0.05
    assert str(tests.significant.dtype) == "boolean"


def test_table2_pair_names_follow_given_order(metrics):
    _, tests = table2(metrics, ["a"], ["cranial", "caudal"], n_boot=50)
    assert tests.comparison.tolist() == ["cranial_vs_caudal"]


def test_table2_uses_requested_prompt_setting(metrics):
    desc_neg, _ = table2(metrics, ["a"], ["caudal"], n_boot=50)
    desc_noneg, _ = table2(metrics, ["a"], ["caudal"], negatives=False, n_boot=50)
    assert desc_neg["mean"].item() == pytest.approx(_dice(metrics, "a", "caudal").mean())
    assert desc_noneg["mean"].item() == pytest.approx(_dice(metrics, "a", "caudal", False).mean())


def test_table2_one_scan_is_na_not_error(one_scan):
    desc, tests = table2(one_scan, ["liver", "spleen"], APPROACHES)
    liver = desc[desc.organ == "liver"]
    assert (liver.n == 1).all() and liver.sd.isna().all() and liver.ci_low.isna().all()
    assert liver["mean"].tolist() == [0.8, 0.7, 0.6]
    spleen = desc[desc.organ == "spleen"]
    assert (spleen.n == 0).all() and spleen["mean"].isna().all()
    assert tests.p_value.isna().all() and tests.statistic.isna().all()
    assert tests.significant.isna().all()
    assert tests[tests.organ == "liver"].note.eq("n/a: 1 paired case (< 5)").all()
    assert tests[tests.organ == "spleen"].note.eq("n/a: 0 paired cases (< 5)").all()


def test_table2_input_validation(metrics):
    with pytest.raises(ValueError, match="gt_voxels"):
        table2(metrics.drop(columns="gt_voxels"), ["a"])
    with pytest.raises(ValueError, match="key"):
        table2(pd.concat([metrics, metrics.iloc[[0]]]), ["a"])


# ---------------------------------------------------------------- table 3


def test_table3_equals_scipy(metrics):
    t3 = table3(metrics, ["a", "b"], APPROACHES)
    assert list(t3.columns) == ["organ", "approach", "n", "rs", "p_value", "note"]
    assert t3.organ.tolist() == ["a"] * 3 + ["b"] * 3 + [ALL_ORGANS] * 3
    assert t3.approach.tolist() == APPROACHES * 3
    sel = metrics[metrics.negatives & (metrics.approach == "mid")]
    for organ, members in [("b", ["b"]), (ALL_ORGANS, ["a", "b"])]:
        cases = sel[sel.organ.isin(members)]
        expected = sps.spearmanr(cases.gt_voxels, cases.dice)
        row = t3[(t3.organ == organ) & (t3.approach == "mid")].iloc[0]
        assert row.n == len(cases) and row.note == ""
        assert row.rs == pytest.approx(expected.statistic)
        assert row.p_value == pytest.approx(expected.pvalue)
    # organ z is not requested, so it is not pooled
    pooled_caudal = t3[(t3.organ == ALL_ORGANS) & (t3.approach == "caudal")].n.item()
    assert pooled_caudal == 7 + 8


def test_table3_one_scan(one_scan):
    t3 = table3(one_scan, ["liver"], APPROACHES)
    assert t3.rs.isna().all() and t3.p_value.isna().all()
    assert t3.note.eq("n/a: 1 case (< 3)").all()


# ---------------------------------------------------------------- table 4


def test_table4_values(metrics):
    t4 = table4(metrics, ["a", "b"], "caudal", n_boot=200)
    assert list(t4.columns) == [
        "organ", "approach", "n", "mean", "sd", "ci_low", "ci_high",
        "n_pairs", "difference", "statistic", "p_value", "significant", "note",
    ]  # fmt: skip
    row = t4[t4.organ == "a"].iloc[0]
    without, with_neg = _dice(metrics, "a", "caudal", False), _dice(metrics, "a", "caudal", True)
    assert row.n == 7  # six paired scans + s901
    assert row["mean"] == pytest.approx(without.mean())
    common = without.index.intersection(with_neg.index)
    assert row.n_pairs == len(common) == 6  # s900 and s901 are unpaired
    assert row.difference == pytest.approx((without[common] - with_neg[common]).mean())
    assert row.difference == pytest.approx(-0.05 - 0.01 * np.mean(range(6)))
    expected = sps.wilcoxon(without[common].to_numpy(), with_neg[common].to_numpy())
    assert row.p_value == pytest.approx(expected.pvalue)
    assert row.p_value == pytest.approx(0.03125)
    assert not pd.isna(row.significant) and not row.significant
    assert bool(table4(metrics, ["a"], n_comparisons=1, n_boot=50).significant.item())


def test_table4_one_scan(one_scan):
    t4 = table4(one_scan, ["liver"])
    row = t4.iloc[0]
    assert row.n == 1 and row["mean"] == 0.75 and math.isnan(row.sd)
    assert row.n_pairs == 1 and row.difference == pytest.approx(-0.05)
    assert math.isnan(row.p_value) and pd.isna(row.significant)
    assert "n/a: 1 paired case (< 5)" in row.note


# ---------------------------------------------------------------- formatting


def test_format_mean_sd():
    assert format_mean_sd(0.8214, 0.19249) == "0.821 ± 0.192"
    assert format_mean_sd(0.5, 0.26, digits=1) == "0.5 ± 0.3"
    assert format_mean_sd(float("nan"), float("nan")) == "n/a"
    assert format_mean_sd(0.7, float("nan")) == "0.700 ± n/a"


def test_surface_summary_counts_the_cases_hd95_cannot_cover():
    df = pd.DataFrame(
        {
            "organ": ["liver"] * 3,
            "approach": ["caudal"] * 3,
            "negatives": [True] * 3,
            "nsd": [0.8, 0.6, 0.0],
            "hd95_mm": [2.0, 4.0, np.nan],  # the third prediction is empty
            "pred_voxels": [10, 12, 0],
        }
    )
    row = surface_summary(df, ["liver"], ["caudal"]).iloc[0]
    assert row["n"] == 3 and row["n_hd95"] == 2 and row["n_empty_pred"] == 1
    assert row["hd95_mean_mm"] == 3.0
    assert np.isclose(row["nsd_mean"], 1.4 / 3)
