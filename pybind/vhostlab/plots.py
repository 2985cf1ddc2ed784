"""Plot helpers for the notebooks (matplotlib): they take the package's tidy DataFrames.

Unavailable values are drawn as what they are: a hatched empty bar labelled "unavailable",
never a bar of height 0.
"""

from __future__ import annotations

import math

import pandas as pd


def _plt():
    import matplotlib.pyplot as plt  # imported lazily: the package itself does not need it
    return plt


def bar_by_design(df: pd.DataFrame, metric: str, queue: int = -1, ax=None, title: str | None = None):
    """One bar per design for ``metric`` (whole-run rows of a run/compare frame, or rows of a
    measure_translate frame). Unavailable values get an empty hatched bar and a label."""
    plt = _plt()
    rows = df[df["metric"] == metric]
    if "queue" in rows:
        rows = rows[rows["queue"] == queue]
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 3.5))
    designs = list(dict.fromkeys(rows["design"]))
    if "available" not in rows:  # benchmark frames: every value was measured
        rows = rows.assign(available=rows["value"].notna())
    avail = [bool(rows[rows["design"] == d]["available"].all()) for d in designs]
    values = [rows[rows["design"] == d]["value"].median() if a else math.nan
              for d, a in zip(designs, avail)]
    finite = [v for v in values if not math.isnan(v)]
    top = max(finite) if finite else 1.0
    if not finite:
        ax.set_yticks([])  # nothing was measured: no scale to suggest otherwise
    for i, (v, a) in enumerate(zip(values, avail)):
        if a and not math.isnan(v):
            ax.bar(i, v, color="C0")
        else:
            ax.bar(i, top, fill=False, hatch="//", edgecolor="grey")
            ax.text(i, top / 2, "unavailable", ha="center", va="center", rotation=90, color="grey")
    ax.set_xticks(range(len(designs)))
    ax.set_xticklabels(designs, rotation=30, ha="right")
    unit = rows["unit"].iloc[0] if len(rows) else ""
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    ax.set_title(title or metric)
    return ax


def line_vs_entries(df: pd.DataFrame, metric: str = "ns/translation", ax=None, logy: bool = False):
    """``metric`` against table size, one line per design (a measure_translate frame or a
    Google Benchmark frame from load_results, whose 'entries' column it uses)."""
    plt = _plt()
    rows = df[(df["metric"] == metric)].dropna(subset=["value"])
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    medians = rows.pivot_table(index="entries", columns="design", values="value",
                               aggfunc="median", sort=False).sort_index()
    for design, g in medians.items():
        g = g.dropna()
        ax.plot(g.index, g.values, marker="o", label=design)
    ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("entries")
    unit = rows["unit"].iloc[0] if len(rows) else ""
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric)
    ax.legend(fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def counters_table(df: pd.DataFrame, index: list[str] | None = None) -> pd.DataFrame:
    """A wide view (rows x designs) for display; unavailable cells read 'unavailable'.

    ``index``: the row keys (default: metric, plus entries when the frame has several sizes).
    Only combinations present in ``df`` appear (no cross product of the keys)."""
    shown = df.copy()
    if "available" not in shown:
        shown["available"] = shown["value"].notna()
    shown["shown"] = [f"{v:.4g}" if a else "unavailable"
                      for v, a in zip(shown["value"], shown["available"])]
    if index is None:
        index = ["metric"]
        if "entries" in shown and shown["entries"].nunique() > 1:
            index.append("entries")
    shown = shown.drop_duplicates(index + ["design"])
    wide = shown.set_index(index + ["design"])["shown"].unstack("design")
    order = list(dict.fromkeys(map(tuple, shown[index].itertuples(index=False))))
    wide = wide.reindex(order if len(index) > 1 else [k[0] for k in order])
    return wide[list(dict.fromkeys(shown["design"]))]


def _run_label(backend: str, design: str) -> str:
    backend = str(backend).split(":", 1)[0]
    if backend == "self":
        return "vhostlab " + design
    return f"{backend} " + ("iommu " + design if design == "off" else "iommu on")


def compare_summary(df: pd.DataFrame, path: str | None = None, title: str | None = None,
                    comparison: pd.DataFrame | None = None):
    """The main comparison as a figure: Mpps per configuration (left; median over runs, the
    whisker spans min..max) and each configuration's throughput relative to the IOMMU-off runs
    of the same backend (right, log scale; 1.0 = as fast as no IOMMU).

    ``df`` is a run frame (``load_results(dir)`` of ``vhostlab compare --json-dir dir``).
    ``comparison`` (``load_comparison(dir)``, optional) adds the verdict of the Mann-Whitney U
    test: a ratio within noise is drawn hatched and labelled "~1.00x (n.s.)", as in the table.
    Saves a PNG to ``path`` when given; returns the figure."""
    plt = _plt()
    rows = df[(df["metric"] == "mpps") & (df["queue"] == -1)].copy()
    if rows.empty:
        raise ValueError("compare_summary: the frame has no whole-run 'mpps' rows")
    rows["label"] = [_run_label(b, d) for b, d in zip(rows["backend"], rows["design"])]
    rows["backend_kind"] = rows["backend"].astype(str).str.split(":").str[0]
    per = (rows.groupby(["backend_kind", "label"], sort=False)["value"]
           .agg(value="median", low="min", high="max").reset_index())
    # vhostlab first, each backend's IOMMU-off baseline on top of its own group.
    per = per.sort_values(by=["backend_kind", "label"],
                          key=lambda c: (c != "self") if c.name == "backend_kind"
                          else ~c.str.endswith(" off"), kind="stable").reset_index(drop=True)
    # Each backend's IOMMU-off median, broadcast over its group (NaN where it has none).
    base = (per["value"].where(per["label"].str.endswith(" off"))
            .groupby(per["backend_kind"]).transform("first"))
    per["ratio"] = per["value"] / base
    per["text"] = [f" {r:.2f}x" if not math.isnan(r) else "" for r in per["ratio"]]
    per["noise"] = False
    subtitle = ""
    if comparison is not None and not comparison.empty:
        verdicts = {_run_label(b, d): (v, bool(sig), bool(iommu)) for b, d, v, sig, iommu in zip(
            comparison["backend"], comparison["design"], comparison["verdict"],
            comparison["significant"], comparison["iommu"])}
        for i, label in enumerate(per["label"]):
            if label in verdicts:
                verdict, significant, iommu = verdicts[label]
                per.loc[i, "text"] = f" {verdict}"
                per.loc[i, "noise"] = iommu and not significant
        attrs = comparison.attrs or {}
        if attrs.get("rounds"):
            warm = (attrs.get("warmup") or {}).get("runs_per_backend", 0)
            subtitle = (f"\n{attrs['rounds']} rounds in rotated order after {warm} warm-up "
                        f"run(s) per backend; Mann-Whitney U vs IOMMU off, n.s. = p >= "
                        f"{attrs.get('alpha', 0.05):g}")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.45 * len(per) + 2.0), sharey=True)
    colors = ["C1" if k != "self" else ("grey" if l.endswith(" off") else "C0")
              for k, l in zip(per["backend_kind"], per["label"])]
    y = range(len(per))
    left.barh(y, per["value"], color=colors,
              xerr=[per["value"] - per["low"], per["high"] - per["value"]],
              error_kw={"ecolor": "black", "lw": 0.8, "capsize": 2})
    left.set_yticks(list(y))
    left.set_yticklabels(per["label"])
    left.invert_yaxis()
    left.set_xlabel("Mpps (median, min..max; higher is better)")
    left.grid(True, axis="x", alpha=0.3)
    bars = right.barh(y, per["ratio"], color=colors)
    for bar, noise in zip(bars, per["noise"]):
        if noise:  # within noise of IOMMU off: no claim either way
            bar.set_alpha(0.35)
            bar.set_hatch("//")
    right.axvline(1.0, color="black", lw=0.8)
    right.set_xscale("log")
    finite = [r for r in per["ratio"] if not math.isnan(r)]
    if finite:  # room for the labels right of the longest bar
        right.set_xlim(min(finite + [1.0]) / 1.3, max(finite + [1.0]) * 2.5)
    right.set_xlabel("throughput vs IOMMU off, same backend (log)")
    right.grid(True, axis="x", alpha=0.3)
    for i, (r, text) in enumerate(zip(per["ratio"], per["text"])):
        if not math.isnan(r):
            right.text(r, i, text, va="center", fontsize="small")
    fig.suptitle((title or "IOTLB designs: vhostlab backend vs DPDK vhost PMD") + subtitle,
                 fontsize="medium" if subtitle else None)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=110)
    return fig
