"""The paper's published numbers (Tables 1-4) and their comparison with a run.

The numbers live in one tidy data file shipped with the package,
``helpers/data/paper_tables.csv``, transcribed from the paper's tables. One
row per published number, with columns

* ``table``: ``table1`` (organ volumes), ``table2`` (Dice by approach),
  ``table2_wilcoxon`` (p between approaches), ``table3`` (Spearman volume vs
  Dice) or ``table4`` (caudal approach without negative prompts);
* ``organ`` (TotalSegmentator class name, or ``all_organs`` in Table 3),
  ``approach`` (``caudal``/``mid``/``cranial``; empty where the table has
  none), ``comparison`` (``caudal_vs_mid`` ..., or
  ``without_vs_with_negatives`` in Table 4; else empty);
* ``statistic`` (``mean_voxels``, ``mean_dice``, ``sd_dice``, ``p_value``,
  ``rs``, ``difference``, ...);
* ``value``: the number, empty (NaN) where the paper printed only a bound
  such as ``< 0.01``;
* ``reported_as``: the text as printed (``"0.0170"``, ``"<0.01"``).

Table 4's Dice is that of the caudal approach *without* negative prompts;
its ``difference`` is (without - with negative prompts), as in the paper.

Nothing here is computed: a number the paper does not give is NaN, never
filled in.
"""

from __future__ import annotations

import importlib.resources
import io
from functools import lru_cache

import pandas as pd

__all__ = [
    "TABLES",
    "compare_with_paper",
    "paper_dice",
    "paper_no_negatives",
    "paper_spearman",
    "paper_table",
    "paper_volumes",
    "paper_wilcoxon",
]

#: Names of the tables in the data file.
TABLES: tuple[str, ...] = ("table1", "table2", "table2_wilcoxon", "table3", "table4")

_COLUMNS = ["table", "organ", "approach", "comparison", "statistic", "value", "reported_as"]


@lru_cache(maxsize=1)
def _read_all() -> pd.DataFrame:
    text = importlib.resources.files("helpers").joinpath("data/paper_tables.csv").read_text()
    df = pd.read_csv(
        io.StringIO(text),
        dtype={c: str for c in _COLUMNS if c != "value"} | {"value": float},
        keep_default_na=False,
        na_values={"value": [""]},
    )
    if list(df.columns) != _COLUMNS:
        raise ValueError(f"paper_tables.csv has columns {list(df.columns)}, expected {_COLUMNS}")
    return df


def paper_table(name: str | None = None) -> pd.DataFrame:
    """The paper's numbers in long form: all tables, or the one called ``name``.

    Returns a copy with the columns described in the module docstring
    (``value`` float, NaN where only a bound was printed; the others str,
    ``""`` where not applicable).

    Raises
    ------
    ValueError
        If ``name`` is not one of :data:`TABLES`.
    """
    df = _read_all()
    if name is None:
        return df.copy()
    if name not in TABLES:
        raise ValueError(f"unknown paper table {name!r}; choose from {TABLES}")
    return df[df["table"] == name].reset_index(drop=True)


def _wide(name: str, index: list[str], order: list[str]) -> pd.DataFrame:
    long = paper_table(name)
    wide = long.pivot(index=index, columns="statistic", values="value")
    # keep the paper's row order (pivot sorts)
    keys = long[index].drop_duplicates()
    wide = wide.reindex(pd.MultiIndex.from_frame(keys) if len(index) > 1 else keys[index[0]])
    wide = wide.reset_index()
    wide.columns.name = None
    return wide[index + order]


def paper_volumes() -> pd.DataFrame:
    """Table 1: organ, mean_voxels, sd_voxels, min_voxels, max_voxels, n."""
    out = _wide("table1", ["organ"], ["mean_voxels", "sd_voxels", "min_voxels", "max_voxels", "n"])
    return out.astype({"min_voxels": "Int64", "max_voxels": "Int64", "n": "Int64"})


def paper_dice() -> pd.DataFrame:
    """Table 2 (descriptive): organ, approach, mean_dice, sd_dice (with negative prompts)."""
    return _wide("table2", ["organ", "approach"], ["mean_dice", "sd_dice"])


def _with_reported(name: str, index: list[str], statistic: str) -> pd.DataFrame:
    long = paper_table(name)
    sub = long[long["statistic"] == statistic]
    return sub[index + ["value", "reported_as"]].rename(
        columns={"value": statistic, "reported_as": f"{statistic}_reported"}
    ).reset_index(drop=True)


def paper_wilcoxon() -> pd.DataFrame:
    """Table 2 (tests): organ, comparison, p_value (NaN where printed as a bound), p_value_reported."""
    return _with_reported("table2_wilcoxon", ["organ", "comparison"], "p_value")


def paper_spearman() -> pd.DataFrame:
    """Table 3: organ (incl. ``all_organs``), approach, rs, p_value, p_value_reported."""
    rs = _wide("table3", ["organ", "approach"], ["rs"])
    p = _with_reported("table3", ["organ", "approach"], "p_value")
    return rs.merge(p, on=["organ", "approach"], how="left", validate="1:1")


def paper_no_negatives() -> pd.DataFrame:
    """Table 4: organ, approach (caudal), mean_dice, sd_dice (without negative
    prompts), difference (without - with), p_value, p_value_reported."""
    desc = _wide("table4", ["organ", "approach"], ["mean_dice", "sd_dice", "difference"])
    p = _with_reported("table4", ["organ", "approach"], "p_value")
    return desc.merge(p, on=["organ", "approach"], how="left", validate="1:1")


_COMPARE_COLUMNS = [
    "organ", "approach", "negatives", "n", "mean", "sd",
    "paper_mean", "paper_sd", "mean_difference", "sd_difference",
]  # fmt: skip


def compare_with_paper(table2_descriptive: pd.DataFrame, table4: pd.DataFrame | None = None) -> pd.DataFrame:
    """This run's Dice next to the paper's, per organ and prompt setting.

    Parameters
    ----------
    table2_descriptive : pandas.DataFrame
        ``helpers.stats.table2(...)[0]`` of the runs with negative prompts
        (columns organ, approach, n, mean, sd, ...).
    table4 : pandas.DataFrame, optional
        ``helpers.stats.table4(...)`` (organ, approach, n, mean, sd, ...):
        the runs without negative prompts. ``None`` when the run has none.

    Returns
    -------
    pandas.DataFrame
        Columns ``organ``, ``approach``, ``negatives`` (bool), ``n``
        (nullable integer), ``mean``, ``sd`` (this run), ``paper_mean``,
        ``paper_sd`` and ``mean_difference``, ``sd_difference`` (this run -
        paper). One row per organ x setting of the paper (caudal, mid,
        cranial with negatives, then caudal without), organs in the
        paper's order, followed by any setting of this run the paper lacks. A value that
        either side lacks is NaN/NA, and so is the difference.
    """
    paper_with = paper_dice().assign(negatives=True)
    paper_without = paper_no_negatives()[["organ", "approach", "mean_dice", "sd_dice"]].assign(negatives=False)
    paper = pd.concat([paper_with, paper_without], ignore_index=True).rename(
        columns={"mean_dice": "paper_mean", "sd_dice": "paper_sd"}
    )
    # per organ: the three approaches with negatives, then the run without
    organ_rank = {o: i for i, o in enumerate(paper_with["organ"].drop_duplicates())}
    paper = paper.assign(
        _organ=paper["organ"].map(organ_rank), _without=~paper["negatives"]
    ).sort_values(["_organ", "_without"], kind="stable").drop(columns=["_organ", "_without"])
    runs = [_run_part(table2_descriptive, negatives=True)]
    if table4 is not None:
        runs.append(_run_part(table4, negatives=False))
    run = pd.concat(runs, ignore_index=True)
    key = ["organ", "approach", "negatives"]
    dupes = run.duplicated(subset=key, keep=False)
    if dupes.any():
        raise ValueError(f"this run's tables repeat an organ/approach: {run.loc[dupes, key].iloc[0].tolist()}")
    out = paper.merge(run, on=key, how="outer", sort=False, indicator=False)
    # paper rows first in the paper's order, then this run's extra rows
    order = {k: i for i, k in enumerate(map(tuple, paper[key].to_numpy()))}
    extra = {k: len(order) + i for i, k in enumerate(map(tuple, run[key].to_numpy()))}
    out["_order"] = [order.get(k, extra.get(k)) for k in map(tuple, out[key].to_numpy())]
    out = out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    out["n"] = out["n"].astype("Int64")
    for c in ("mean", "sd", "paper_mean", "paper_sd"):
        out[c] = out[c].astype(float)
    out["mean_difference"] = out["mean"] - out["paper_mean"]
    out["sd_difference"] = out["sd"] - out["paper_sd"]
    out["negatives"] = out["negatives"].astype(bool)
    return out[_COMPARE_COLUMNS]


def _run_part(df: pd.DataFrame, *, negatives: bool) -> pd.DataFrame:
    missing = [c for c in ("organ", "approach", "n", "mean", "sd") if c not in df.columns]
    if missing:
        raise ValueError(f"table lacks columns {missing}; it has {list(df.columns)}")
    part = df[["organ", "approach", "n", "mean", "sd"]].copy()
    part["n"] = pd.to_numeric(part["n"], errors="coerce").astype(float)
    part["mean"] = pd.to_numeric(part["mean"], errors="coerce").astype(float)
    part["sd"] = pd.to_numeric(part["sd"], errors="coerce").astype(float)
    part["negatives"] = negatives
    return part


def side_by_side(this: pd.DataFrame, published: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    """This run's ``values`` next to the paper's (``paper_<value>``), matched on ``keys``.

    Rows keep this run's order; rows only the paper has follow. The paper's
    printed text (``p_value_reported``, e.g. ``"<0.01"`` where it gave no
    number) comes along when present. Nothing is filled in: a value missing
    on either side stays NaN.
    """
    extra = [c for c in ("p_value_reported",) if c in published.columns]
    theirs = published[keys + values + extra].rename(columns={v: f"paper_{v}" for v in values + extra})
    ours = this[keys + values].merge(theirs, on=keys, how="left")
    paper_only = theirs.merge(this[keys], on=keys, how="left", indicator=True)
    paper_only = paper_only[paper_only["_merge"] == "left_only"].drop(columns="_merge")
    return pd.concat([ours, paper_only], ignore_index=True)


def compare_tables(table1: pd.DataFrame, wilcoxon: pd.DataFrame, spearman: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Tables 1, 2 (Wilcoxon p) and 3 of this run next to the paper's."""
    return {
        "comparison_volumes": side_by_side(
            table1, paper_volumes(), ["organ"], ["mean_voxels", "sd_voxels", "min_voxels", "max_voxels", "n"]
        ),
        "comparison_wilcoxon": side_by_side(wilcoxon, paper_wilcoxon(), ["organ", "comparison"], ["p_value"]),
        "comparison_spearman": side_by_side(spearman, paper_spearman(), ["organ", "approach"], ["rs", "p_value"]),
    }
