"""The paper's statistics over a tidy table of per-case metrics.

Input table
-----------
One row per scan, organ, approach and prompt setting, with columns

* ``scan_id`` (str), ``organ`` (str),
* ``approach`` (str; the starting slice, e.g. ``caudal``, ``mid``,
  ``cranial``),
* ``negatives`` (bool; True when negative prompts were given),
* ``dice`` (float) and ``gt_voxels`` (int, the organ volume in voxels).

Cases may be missing: paired tests pair rows by ``scan_id`` and ignore scans
present on one side only. A (scan_id, organ, approach, negatives) key may
appear at most once.

"Not available" convention
--------------------------
A statistic that cannot be computed (too few cases, constant input, all
paired differences zero) is NaN in its numeric column, ``pd.NA`` in the
nullable-boolean ``significant`` column, and the reason is written in the
``note`` column, starting with ``"n/a: "`` (e.g. ``"n/a: 1 paired case
(< 5)"``). ``note`` is the empty string when everything in the row is
available. Nothing is raised for such cases and no placeholder number is
reported. Invalid input (missing columns, duplicate keys, mismatched
lengths) raises ``ValueError``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

from helpers.params import LEVELS, StudyParams

#: The study's defaults (one source of truth: :class:`helpers.params.StudyParams`).
_D = StudyParams()

__all__ = [
    "ALL_ORGANS",
    "APPROACHES",
    "format_mean_sd",
    "mean_sd_grid",
    "spearman",
    "summary",
    "surface_summary",
    "table2",
    "table3",
    "table4",
    "wilcoxon_paired",
]

#: Default order of the starting-slice approaches (the paper's order).
APPROACHES: tuple[str, ...] = tuple(LEVELS)

#: ``organ`` label of the Table 3 rows pooled over all organs.
ALL_ORGANS = "all_organs"

_REQUIRED_COLUMNS = ("scan_id", "organ", "approach", "negatives", "dice", "gt_voxels")
_KEY = ["scan_id", "organ", "approach", "negatives"]
_NAN = float("nan")


def _plural(n: int, noun: str) -> str:
    """Return e.g. ``"1 paired case"`` or ``"3 paired cases"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _join_notes(*notes: str) -> str:
    """Join the non-empty notes with ``"; "``, dropping repeats."""
    return "; ".join(dict.fromkeys(note for note in notes if note))


def _significant(p: float, threshold: float) -> bool | pd.api.typing.NAType:
    """``p < threshold``, or ``pd.NA`` when ``p`` is NaN (not available)."""
    return pd.NA if math.isnan(p) else bool(p < threshold)


def summary(
    values: Sequence[float] | np.ndarray | pd.Series,
    *,
    n_boot: int = _D.n_boot,
    ci: float = 0.95,
    seed: int = _D.seed,
) -> dict[str, float | int | str]:
    """Descriptive statistics of one sample, with a bootstrap CI of the mean.

    NaN values are dropped first (e.g. a Dice that is undefined because both
    masks are empty), so ``n`` counts the finite values used.

    The confidence interval is the percentile bootstrap: ``n_boot`` resamples
    of size ``n`` drawn with replacement by ``numpy.random.default_rng(seed)``,
    and the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` quantiles of their means.
    The same seed gives the same interval.

    Parameters
    ----------
    values : array-like of float
        The sample.
    n_boot : int, default 2000
        Number of bootstrap resamples (>= 1).
    ci : float, default 0.95
        Confidence level, in (0, 1).
    seed : int, default 0
        Seed of the bootstrap generator.

    Returns
    -------
    dict
        ``n`` (int), ``mean``, ``sd`` (ddof=1), ``median``, ``ci_low``,
        ``ci_high`` (floats) and ``note`` (str). ``mean`` and ``median`` are
        NaN when ``n == 0``; ``sd`` and the CI are NaN when ``n < 2``; the
        note then says why, else it is ``""``.

    Raises
    ------
    ValueError
        If ``n_boot < 1`` or ``ci`` is not in (0, 1).
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    n = int(x.size)
    result: dict[str, float | int | str] = {
        "n": n,
        "mean": _NAN,
        "sd": _NAN,
        "median": _NAN,
        "ci_low": _NAN,
        "ci_high": _NAN,
        "note": "",
    }
    if n == 0:
        result["note"] = "n/a: 0 values"
        return result
    result["mean"] = float(x.mean())
    result["median"] = float(np.median(x))
    if n < 2:
        result["note"] = f"n/a: sd and CI need >= 2 values, got {n}"
        return result
    result["sd"] = float(x.std(ddof=1))
    rng = np.random.default_rng(seed)
    boot_means = x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    low, high = np.quantile(boot_means, [(1 - ci) / 2, (1 + ci) / 2])
    result["ci_low"], result["ci_high"] = float(low), float(high)
    return result


def wilcoxon_paired(
    a: pd.Series, b: pd.Series, *, min_pairs: int = _D.min_pairs
) -> tuple[float, float, int, str]:
    """Two-sided Wilcoxon signed-rank test of paired samples.

    ``a`` and ``b`` are paired by index label (``scan_id``): labels present
    in only one of them, and pairs with a NaN on either side, are dropped.
    The test is ``scipy.stats.wilcoxon(a, b)`` with SciPy's defaults:
    ``zero_method="wilcox"`` (zero differences are discarded before
    ranking), ``correction=False``, ``alternative="two-sided"`` and
    ``method="auto"`` (as of SciPy 1.17: the exact null distribution for up
    to 50 pairs without ties or zero differences; with ties or zeros, an
    exhaustive permutation distribution for up to 13 pairs; otherwise the
    normal approximation; older SciPy, such as the paper's 1.14, decided
    differently, so small-sample p-values with ties can differ). The
    statistic is the smaller of the positive- and negative-rank sums, so it
    does not depend on the order of ``a`` and ``b``.

    Parameters
    ----------
    a, b : pandas.Series
        Paired values (e.g. Dice) indexed by a unique ``scan_id``.
    min_pairs : int, default 5
        Fewest pairs for which a test is reported.

    Returns
    -------
    statistic : float
        Wilcoxon statistic, NaN when not available.
    p : float
        Two-sided p-value, NaN when not available.
    n_pairs : int
        Number of complete pairs (zero differences included).
    note : str
        ``""``, or the reason the test is not available: fewer than
        ``min_pairs`` pairs, or all differences zero.

    Raises
    ------
    ValueError
        If either index has duplicate labels (the pairing would be
        ambiguous).
    """
    for name, series in (("a", a), ("b", b)):
        if not series.index.is_unique:
            dupes = series.index[series.index.duplicated()].unique().tolist()
            raise ValueError(f"{name} has duplicate index labels {dupes}; pairing is ambiguous")
    pairs = pd.concat(
        [a.astype(float).rename("a"), b.astype(float).rename("b")], axis=1, join="inner"
    ).dropna()
    n_pairs = len(pairs)
    if n_pairs < min_pairs:
        return _NAN, _NAN, n_pairs, f"n/a: {_plural(n_pairs, 'paired case')} (< {min_pairs})"
    if (pairs["a"] == pairs["b"]).all():
        return _NAN, _NAN, n_pairs, f"n/a: all {n_pairs} paired differences are zero"
    result = sps.wilcoxon(pairs["a"].to_numpy(), pairs["b"].to_numpy())
    return float(result.statistic), float(result.pvalue), n_pairs, ""


def spearman(
    x: Sequence[float] | np.ndarray | pd.Series,
    y: Sequence[float] | np.ndarray | pd.Series,
    *,
    min_n: int = _D.min_spearman_n,
) -> tuple[float, float, int, str]:
    """Spearman rank correlation with ``scipy.stats.spearmanr``.

    ``x`` and ``y`` are paired by position (not by index); pairs with a NaN
    on either side are dropped. The p-value is SciPy's two-sided default
    (t-distribution approximation).

    Parameters
    ----------
    x, y : array-like of float
        Paired samples of the same length.
    min_n : int, default 3
        Fewest complete pairs for which a correlation is reported.

    Returns
    -------
    rs : float
        Spearman's rho, NaN when not available.
    p : float
        Two-sided p-value, NaN when not available.
    n : int
        Number of complete pairs.
    note : str
        ``""``, or the reason it is not available: fewer than ``min_n``
        pairs, or ``x`` or ``y`` constant (ranks undefined).

    Raises
    ------
    ValueError
        If ``x`` and ``y`` differ in length.
    """
    xa = np.asarray(x, dtype=float).ravel()
    ya = np.asarray(y, dtype=float).ravel()
    if xa.size != ya.size:
        raise ValueError(f"x and y must have the same length, got {xa.size} and {ya.size}")
    keep = ~(np.isnan(xa) | np.isnan(ya))
    xa, ya = xa[keep], ya[keep]
    n = int(xa.size)
    if n < min_n:
        return _NAN, _NAN, n, f"n/a: {_plural(n, 'case')} (< {min_n})"
    constant = [name for name, v in (("x", xa), ("y", ya)) if np.all(v == v[0])]
    if constant:
        return _NAN, _NAN, n, f"n/a: {' and '.join(constant)} constant over {n} cases"
    result = sps.spearmanr(xa, ya)
    return float(result.statistic), float(result.pvalue), n, ""


def _validated(df: pd.DataFrame) -> pd.DataFrame:
    """Check the input table's columns and key uniqueness; return it.

    Raises
    ------
    ValueError
        If a required column is missing or a (scan_id, organ, approach,
        negatives) key appears more than once.
    """
    missing = [c for c in _REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"metrics table lacks columns {missing}; it has {list(df.columns)}")
    dupes = df.duplicated(subset=_KEY, keep=False)
    if dupes.any():
        raise ValueError(
            f"{int(dupes.sum())} rows share a (scan_id, organ, approach, negatives) key, e.g. "
            f"{df.loc[dupes, _KEY].iloc[0].tolist()}"
        )
    return df


def _dice_by_scan(df: pd.DataFrame, organ: str, approach: str, negatives: bool) -> pd.Series:
    """Dice of one organ, approach and prompt setting, indexed by scan_id."""
    rows = df[
        (df["organ"] == organ) & (df["approach"] == approach) & (df["negatives"] == negatives)
    ]
    return rows.set_index("scan_id")["dice"].astype(float)


def table2(
    df: pd.DataFrame,
    organs: Sequence[str],
    approaches: Sequence[str] = APPROACHES,
    *,
    negatives: bool = True,
    alpha: float = _D.alpha,
    n_comparisons: int = _D.n_comparisons,
    min_pairs: int = _D.min_pairs,
    n_boot: int = _D.n_boot,
    seed: int = _D.seed,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2: Dice per organ and approach, and Wilcoxon tests between approaches.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy metrics table (see the module docstring).
    organs : sequence of str
        Organs, in the order of the output rows.
    approaches : sequence of str, default ``("caudal", "mid", "cranial")``
        Approaches, in order; the comparisons are every pair
        ``f"{first}_vs_{second}"`` with ``first`` earlier in this order.
    negatives : bool, default True
        Use the runs with (True) or without (False) negative prompts.
    alpha : float, default 0.05
        Family-wise significance level.
    n_comparisons : int, default 3
        Bonferroni divisor: a test is significant when
        ``p < alpha / n_comparisons`` (the paper: 0.05 / 3 ≈ 0.0167).
    min_pairs : int, default 5
        Fewest paired scans for which a Wilcoxon test is reported.
    n_boot, seed : int
        Bootstrap resamples and seed for the CI of the mean (every cell uses
        the same seed); see :func:`summary`.

    Returns
    -------
    descriptive : pandas.DataFrame
        One row per organ x approach: ``organ``, ``approach``, ``n``,
        ``mean``, ``sd``, ``ci_low``, ``ci_high``, ``note``.
    tests : pandas.DataFrame
        One row per organ x comparison: ``organ``, ``comparison``,
        ``n_pairs``, ``statistic``, ``p_value``, ``significant`` (nullable
        boolean; ``pd.NA`` when the test is not available), ``note``.

    Raises
    ------
    ValueError
        If ``df`` lacks a required column or has duplicate keys.
    """
    df = _validated(df)
    threshold = alpha / n_comparisons
    described = []
    tested = []
    for organ in organs:
        dice_by = {a: _dice_by_scan(df, organ, a, negatives) for a in approaches}
        for approach in approaches:
            s = summary(dice_by[approach], n_boot=n_boot, seed=seed)
            described.append(
                {
                    "organ": organ,
                    "approach": approach,
                    **{k: s[k] for k in ("n", "mean", "sd", "ci_low", "ci_high", "note")},
                }
            )
        for first, second in itertools.combinations(approaches, 2):
            stat, p, n_pairs, note = wilcoxon_paired(
                dice_by[first], dice_by[second], min_pairs=min_pairs
            )
            tested.append(
                {
                    "organ": organ,
                    "comparison": f"{first}_vs_{second}",
                    "n_pairs": n_pairs,
                    "statistic": stat,
                    "p_value": p,
                    "significant": _significant(p, threshold),
                    "note": note,
                }
            )
    descriptive = pd.DataFrame(
        described,
        columns=["organ", "approach", "n", "mean", "sd", "ci_low", "ci_high", "note"],
    )
    tests = pd.DataFrame(
        tested,
        columns=["organ", "comparison", "n_pairs", "statistic", "p_value", "significant", "note"],
    ).astype({"significant": "boolean"})
    return descriptive, tests


def table3(
    df: pd.DataFrame,
    organs: Sequence[str],
    approaches: Sequence[str] = APPROACHES,
    *,
    negatives: bool = True,
    min_n: int = _D.min_spearman_n,
) -> pd.DataFrame:
    """Table 3: Spearman correlation of organ volume (gt_voxels) with Dice.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy metrics table (see the module docstring).
    organs : sequence of str
        Organs, in the order of the output rows.
    approaches : sequence of str, default ``("caudal", "mid", "cranial")``
        Approaches, in the order of the output rows.
    negatives : bool, default True
        Use the runs with (True) or without (False) negative prompts.
    min_n : int, default 3
        Fewest cases for which a correlation is reported.

    Returns
    -------
    pandas.DataFrame
        Columns ``organ``, ``approach``, ``n``, ``rs``, ``p_value``,
        ``note``: one row per organ x approach (organ-major), then one row
        per approach with organ ``"all_organs"`` (:data:`ALL_ORGANS`), the
        cases of all ``organs`` pooled.

    Raises
    ------
    ValueError
        If ``df`` lacks a required column or has duplicate keys.
    """
    df = _validated(df)
    selected = df[df["negatives"] == negatives]
    groups = [(organ, [organ]) for organ in organs] + [(ALL_ORGANS, list(organs))]
    rows = []
    for label, members in groups:
        for approach in approaches:
            cases = selected[
                selected["organ"].isin(members) & (selected["approach"] == approach)
            ]
            rs, p, n, note = spearman(cases["gt_voxels"], cases["dice"], min_n=min_n)
            rows.append(
                {
                    "organ": label,
                    "approach": approach,
                    "n": n,
                    "rs": rs,
                    "p_value": p,
                    "note": note,
                }
            )
    return pd.DataFrame(rows, columns=["organ", "approach", "n", "rs", "p_value", "note"])


def table4(
    df: pd.DataFrame,
    organs: Sequence[str],
    approach: str = _D.ablation_approaches[0],
    *,
    alpha: float = _D.alpha,
    n_comparisons: int = _D.n_comparisons,
    min_pairs: int = _D.min_pairs,
    n_boot: int = _D.n_boot,
    seed: int = _D.seed,
) -> pd.DataFrame:
    """Table 4: Dice without negative prompts, compared with the run with them.

    The descriptive columns (``n`` to ``ci_high``) use every case without
    negative prompts at ``approach``. ``difference`` uses paired cases only
    (scans with a Dice both with and without negative prompts): the mean over
    those scans of ``dice_without - dice_with``, so a negative value means
    lower Dice without negative prompts (the paper's sign). The Wilcoxon test
    (see :func:`wilcoxon_paired`) uses the same pairs.

    Parameters
    ----------
    df : pandas.DataFrame
        Tidy metrics table (see the module docstring).
    organs : sequence of str
        Organs, in the order of the output rows.
    approach : str, default "caudal"
        The approach compared (the paper ran only the caudal one without
        negative prompts).
    alpha : float, default 0.05
        Family-wise significance level.
    n_comparisons : int, default 3
        Bonferroni divisor: significant when ``p < alpha / n_comparisons``
        (the paper used its single threshold 0.05 / 3 for all tests).
    min_pairs : int, default 5
        Fewest paired scans for which a Wilcoxon test is reported.
    n_boot, seed : int
        Bootstrap resamples and seed for the CI of the mean; see
        :func:`summary`.

    Returns
    -------
    pandas.DataFrame
        One row per organ: ``organ``, ``approach``, ``n``, ``mean``, ``sd``,
        ``ci_low``, ``ci_high`` (without negative prompts), ``n_pairs``,
        ``difference``, ``statistic``, ``p_value``, ``significant``
        (nullable boolean), ``note``.

    Raises
    ------
    ValueError
        If ``df`` lacks a required column or has duplicate keys.
    """
    df = _validated(df)
    threshold = alpha / n_comparisons
    rows = []
    for organ in organs:
        without = _dice_by_scan(df, organ, approach, negatives=False)
        with_neg = _dice_by_scan(df, organ, approach, negatives=True)
        s = summary(without, n_boot=n_boot, seed=seed)
        stat, p, n_pairs, test_note = wilcoxon_paired(without, with_neg, min_pairs=min_pairs)
        differences = (without - with_neg).dropna()
        rows.append(
            {
                "organ": organ,
                "approach": approach,
                **{k: s[k] for k in ("n", "mean", "sd", "ci_low", "ci_high")},
                "n_pairs": n_pairs,
                "difference": float(differences.mean()) if len(differences) else _NAN,
                "statistic": stat,
                "p_value": p,
                "significant": _significant(p, threshold),
                "note": _join_notes(str(s["note"]), test_note),
            }
        )
    columns = [
        "organ", "approach", "n", "mean", "sd", "ci_low", "ci_high",
        "n_pairs", "difference", "statistic", "p_value", "significant", "note",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).astype({"significant": "boolean"})


def format_mean_sd(mean: float, sd: float, digits: int = 3) -> str:
    """Format a mean and SD as in the paper's tables.

    Parameters
    ----------
    mean, sd : float
        Values to format; NaN (or ``None`` / ``pd.NA``) means not available.
    digits : int, default 3
        Decimal places.

    Returns
    -------
    str
        ``"0.821 ± 0.192"``; ``"n/a"`` when the mean is not available;
        ``"0.821 ± n/a"`` when only the SD is not (a single case).
    """
    if pd.isna(mean):
        return "n/a"
    sd_text = "n/a" if pd.isna(sd) else f"{sd:.{digits}f}"
    return f"{mean:.{digits}f} ± {sd_text}"


def mean_sd_grid(desc: pd.DataFrame, columns: str = "approach", digits: int = 3) -> pd.DataFrame:
    """Organ x ``columns`` grid of ``"mean ± sd"`` strings (the paper's layout of Table 2).

    ``desc`` is the descriptive table of :func:`table2` (columns organ,
    approach, mean, sd, ...). Row and column order follow ``desc``.
    """
    text = desc.assign(value=[format_mean_sd(m, s, digits) for m, s in zip(desc["mean"], desc["sd"])])
    grid = text.pivot(index="organ", columns=columns, values="value")
    return grid.reindex(index=desc["organ"].unique(), columns=desc[columns].unique()).reset_index()


def surface_summary(df: pd.DataFrame, organs: Sequence[str], approaches: Sequence[str], *, negatives: bool = True) -> pd.DataFrame:
    """NSD and HD95 (mm) per organ x approach: mean, SD, and the cases behind each.

    HD95 is undefined for an empty prediction, so its mean covers fewer cases
    than the NSD's (an empty prediction scores NSD 0): ``n_hd95`` and
    ``n_empty_pred`` say how many, so that a mean over the surviving cases is
    not mistaken for one over all.
    """
    rows = []
    sel = df[df["negatives"] == negatives]
    for organ in organs:
        for approach in approaches:
            sub = sel[(sel["organ"] == organ) & (sel["approach"] == approach)]
            hd = sub["hd95_mm"].astype(float).dropna()
            rows.append(
                {
                    "organ": organ,
                    "approach": approach,
                    "n": int(sub["nsd"].notna().sum()),
                    "nsd_mean": sub["nsd"].mean(),
                    "nsd_sd": sub["nsd"].std(ddof=1),
                    "n_hd95": len(hd),
                    "hd95_mean_mm": hd.mean(),
                    "hd95_sd_mm": hd.std(ddof=1),
                    "n_empty_pred": int((sub["pred_voxels"] == 0).sum()),
                }
            )
    return pd.DataFrame(rows)
