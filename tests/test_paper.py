"""Tests of helpers.paper: the packaged copy of the paper's tables and the comparison with a run."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.paper import (
    TABLES,
    compare_with_paper,
    paper_dice,
    paper_no_negatives,
    paper_spearman,
    paper_table,
    paper_volumes,
    paper_wilcoxon,
)
from helpers.params import ORGANS

SHARED = Path("/work/shared/paper")


def _shared(name: str) -> list[dict]:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{path} not available")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def _lookup(table: str, organ: str, statistic: str, approach: str = "", comparison: str = "") -> pd.Series:
    df = paper_table(table)
    hit = df[
        (df["organ"] == organ)
        & (df["statistic"] == statistic)
        & (df["approach"] == approach)
        & (df["comparison"] == comparison)
    ]
    assert len(hit) == 1, f"{table} {organ} {approach} {comparison} {statistic}: {len(hit)} rows"
    return hit.iloc[0]


def _same_number(value: float, text: str) -> None:
    if text == "":
        assert math.isnan(value)
    else:
        assert value == float(text)


def test_data_file_shape():
    df = paper_table()
    assert list(df.columns) == ["table", "organ", "approach", "comparison", "statistic", "value", "reported_as"]
    assert set(df["table"]) == set(TABLES)
    assert df["value"].dtype == float
    key = ["table", "organ", "approach", "comparison", "statistic"]
    assert not df.duplicated(subset=key).any()
    # a value is missing only where the paper printed a bound
    assert (df.loc[df["value"].isna(), "reported_as"] == "<0.01").all()
    assert (df["reported_as"] != "").all()
    assert set(df.loc[df["table"] != "table3", "organ"]) == set(ORGANS)
    with pytest.raises(ValueError, match="unknown paper table"):
        paper_table("table9")


def test_table1_reproduced():
    rows = _shared("table1_volumes.csv")
    assert len(paper_table("table1")) == 5 * len(rows)
    for r in rows:
        for stat in ("mean_voxels", "sd_voxels", "min_voxels", "max_voxels", "n"):
            hit = _lookup("table1", r["organ"], stat)
            _same_number(hit["value"], r[stat])
            assert hit["reported_as"] == r[stat]
    wide = paper_volumes().set_index("organ")
    assert wide.loc["liver", "n"] == 119
    assert wide.loc["gallbladder", "mean_voxels"] == 6247.61


def test_table2_reproduced():
    rows = _shared("table2_dice_by_approach.csv")
    assert len(paper_table("table2")) == 2 * len(rows)
    wide = paper_dice()
    assert len(wide) == len(rows)
    for r, w in zip(rows, wide.itertuples(index=False)):
        assert (w.organ, w.approach) == (r["organ"], r["approach"])  # the paper's order
        for stat in ("mean_dice", "sd_dice"):
            hit = _lookup("table2", r["organ"], stat, approach=r["approach"])
            _same_number(hit["value"], r[stat])
            assert hit["reported_as"] == r[stat]
            assert getattr(w, stat) == float(r[stat])


def test_table2_wilcoxon_reproduced():
    rows = _shared("table2_wilcoxon_p.csv")
    assert len(paper_table("table2_wilcoxon")) == len(rows)
    wide = paper_wilcoxon().set_index(["organ", "comparison"])
    for r in rows:
        hit = _lookup("table2_wilcoxon", r["organ"], "p_value", comparison=r["comparison"])
        _same_number(hit["value"], r["p_value"])
        assert hit["reported_as"] == r["reported_as"]
        assert wide.loc[(r["organ"], r["comparison"]), "p_value_reported"] == r["reported_as"]


def test_table3_reproduced():
    rows = _shared("table3_spearman.csv")
    assert len(paper_table("table3")) == 2 * len(rows)
    wide = paper_spearman().set_index(["organ", "approach"])
    for r in rows:
        rs = _lookup("table3", r["organ"], "rs", approach=r["level"])
        _same_number(rs["value"], r["rs"])
        assert rs["reported_as"] == r["rs"]
        p = _lookup("table3", r["organ"], "p_value", approach=r["level"])
        _same_number(p["value"], r["p_value"])
        assert p["reported_as"] == r["reported_p"]
        assert wide.loc[(r["organ"], r["level"]), "rs"] == float(r["rs"])
    assert "all_organs" in wide.index.get_level_values("organ")


def test_table4_reproduced():
    rows = _shared("table4_no_negative_prompts.csv")
    assert len(paper_table("table4")) == 4 * len(rows)
    wide = paper_no_negatives().set_index("organ")
    assert (wide["approach"] == "caudal").all()
    pairs = {
        "mean_dice": ("mean_dice_no_neg", ""),
        "sd_dice": ("sd_dice_no_neg", ""),
        "difference": ("difference_vs_caudal_with_neg", "without_vs_with_negatives"),
    }
    for r in rows:
        for stat, (col, comparison) in pairs.items():
            hit = _lookup("table4", r["organ"], stat, approach="caudal", comparison=comparison)
            _same_number(hit["value"], r[col])
            assert hit["reported_as"] == r[col]
            assert wide.loc[r["organ"], stat] == float(r[col])
        p = _lookup("table4", r["organ"], "p_value", approach="caudal", comparison="without_vs_with_negatives")
        _same_number(p["value"], r["p_value"])
        assert p["reported_as"] == r["reported_p"]


def _made_up_table2() -> pd.DataFrame:
    nan = float("nan")
    return pd.DataFrame(
        {
            "organ": ["liver", "liver", "liver", "spleen"],
            "approach": ["caudal", "mid", "cranial", "caudal"],
            "n": [10, 10, 0, 1],
            "mean": [0.800, 0.754, nan, 0.900],
            "sd": [0.100, 0.200, nan, nan],
            "ci_low": [0.7, 0.6, nan, nan],
            "ci_high": [0.9, 0.8, nan, nan],
            "note": ["", "", "n/a: 0 values", "n/a: sd and CI need >= 2 values, got 1"],
        }
    )


def _made_up_table4() -> pd.DataFrame:
    return pd.DataFrame(
        {"organ": ["liver"], "approach": ["caudal"], "n": [9], "mean": [0.700], "sd": [0.300],
         "ci_low": [0.5], "ci_high": [0.8], "n_pairs": [9], "difference": [-0.1]}  # fmt: skip
    )


def test_compare_with_paper_differences():
    out = compare_with_paper(_made_up_table2(), _made_up_table4())
    assert list(out.columns) == [
        "organ", "approach", "negatives", "n", "mean", "sd",
        "paper_mean", "paper_sd", "mean_difference", "sd_difference",
    ]  # fmt: skip
    assert len(out) == 4 * len(ORGANS)  # 3 approaches with negatives + caudal without, per organ
    assert list(out["organ"].iloc[:4]) == ["liver"] * 4
    assert list(out["approach"].iloc[:4]) == ["caudal", "mid", "cranial", "caudal"]
    assert list(out["negatives"].iloc[:4]) == [True, True, True, False]
    idx = out.set_index(["organ", "approach", "negatives"])

    def at(organ, approach, negatives, column):  # column-wise, keeps each column's dtype
        return idx.at[(organ, approach, negatives), column]

    assert at("liver", "caudal", True, "n") == 10
    assert at("liver", "caudal", True, "paper_mean") == 0.821
    assert at("liver", "caudal", True, "paper_sd") == 0.192
    assert at("liver", "caudal", True, "mean_difference") == pytest.approx(0.800 - 0.821)
    assert at("liver", "caudal", True, "sd_difference") == pytest.approx(0.100 - 0.192)
    assert at("liver", "mid", True, "mean_difference") == pytest.approx(0.0, abs=1e-12)

    # Table 4: without negative prompts
    assert at("liver", "caudal", False, "n") == 9
    assert at("liver", "caudal", False, "paper_mean") == 0.785
    assert at("liver", "caudal", False, "paper_sd") == 0.244
    assert at("liver", "caudal", False, "mean_difference") == pytest.approx(0.700 - 0.785)
    assert at("liver", "caudal", False, "sd_difference") == pytest.approx(0.300 - 0.244)

    # this run has no value: NaN, never a number
    assert at("liver", "cranial", True, "n") == 0
    assert np.isnan(at("liver", "cranial", True, "mean"))
    assert np.isnan(at("liver", "cranial", True, "mean_difference"))
    assert at("spleen", "caudal", True, "mean_difference") == pytest.approx(0.900 - 0.891)
    assert np.isnan(at("spleen", "caudal", True, "sd"))
    assert np.isnan(at("spleen", "caudal", True, "sd_difference"))
    # an organ this run does not have at all
    assert pd.isna(at("pancreas", "mid", True, "n"))
    assert np.isnan(at("pancreas", "mid", True, "mean"))
    assert np.isnan(at("pancreas", "mid", True, "mean_difference"))
    assert at("pancreas", "mid", True, "paper_mean") == 0.361


def test_compare_with_paper_without_table4_and_extra_settings():
    t2 = pd.concat(
        [_made_up_table2(), pd.DataFrame({"organ": ["liver"], "approach": ["apex"], "n": [3], "mean": [0.5], "sd": [0.1]})],
        ignore_index=True,
    )
    out = compare_with_paper(t2)
    without = out[~out["negatives"]]
    assert len(without) == len(ORGANS)
    assert without["n"].isna().all() and without["mean_difference"].isna().all()
    assert without["paper_mean"].notna().all()
    last = len(out) - 1  # a setting the paper lacks comes last, with no paper numbers
    assert (out.at[last, "organ"], out.at[last, "approach"], out.at[last, "n"]) == ("liver", "apex", 3)
    assert np.isnan(out.at[last, "paper_mean"]) and np.isnan(out.at[last, "mean_difference"])


def test_compare_with_paper_rejects_duplicates_and_missing_columns():
    t2 = _made_up_table2()
    with pytest.raises(ValueError, match="repeat"):
        compare_with_paper(pd.concat([t2, t2.iloc[:1]], ignore_index=True))
    with pytest.raises(ValueError, match="lacks columns"):
        compare_with_paper(t2.drop(columns="sd"))


def test_side_by_side_keeps_this_runs_order_and_appends_paper_only_rows():
    from helpers.paper import compare_tables

    t1 = pd.DataFrame({"organ": ["spleen", "liver"], "mean_voxels": [1.0, 2.0], "sd_voxels": [np.nan, np.nan],
                       "min_voxels": [1, 2], "max_voxels": [1, 2], "n": [1, 1]})
    wil = pd.DataFrame({"organ": ["liver"], "comparison": ["caudal_vs_mid"], "p_value": [np.nan]})
    spe = pd.DataFrame({"organ": ["liver"], "approach": ["caudal"], "rs": [0.5], "p_value": [0.2]})
    out = compare_tables(t1, wil, spe)
    vol = out["comparison_volumes"]
    assert list(vol["organ"][:2]) == ["spleen", "liver"] and len(vol) == 8
    assert vol.loc[1, "paper_mean_voxels"] == 465008.6 and np.isnan(vol.loc[0, "sd_voxels"])
    w = out["comparison_wilcoxon"]
    assert w.loc[0, "paper_p_value_reported"] == "<0.01" and np.isnan(w.loc[0, "paper_p_value"])
    assert len(w) == 24
    s = out["comparison_spearman"]
    assert s.loc[0, "rs"] == 0.5 and s.loc[0, "paper_rs"] == 0.328 and len(s) == 27
