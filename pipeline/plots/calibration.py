"""Calibration figures: parameters vs initial values and bounds, loss curves, method comparison."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from pipeline.plots.data import MethodResult
from pipeline.plots.style import (
    COLORS,
    METHOD_COLORS,
    empty_panel,
    grid_shape,
    hide_unused,
    new_figure,
    record,
    styled,
)

PARAMETER_LABELS = {
    "optimal_fiber_length_m": "optimal fibre length (m)",
    "tendon_slack_length_m": "tendon slack length (m)",
    "max_isometric_force_n": "max isometric force (N)",
    "c1": "activation c1 (-)",
    "c2": "activation c2 (-)",
    "shape_factor": "shape factor A (-)",
    "damping": "damping (-)",
    "strength_coefficient": "strength coefficient (-)",
}


def parameter_names(mtus: Mapping[str, Mapping]) -> list[str]:
    """Calibrated parameter keys of a parameters.json ``mtus`` block, in a stable order.

    Entries marked ``"calibrated": false`` are left out, and so is ``strength_coefficient``
    when ``max_isometric_force_n`` (generic force x strength) is there to show it in newtons.
    """
    names: list[str] = []
    for entry in mtus.values():
        names += [k for k, v in entry.items() if isinstance(v, Mapping) and "value" in v
                  and v.get("calibrated", True) is not False and k not in names]
    if "max_isometric_force_n" in names and "strength_coefficient" in names:
        names.remove("strength_coefficient")
    order = list(PARAMETER_LABELS)
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def _limits(entries: list[Mapping]) -> tuple[float, float] | None:
    """x-limits covering bounds, initial and calibrated values (not the SE bars)."""
    values = [_num(e, k) for e in entries for k in ("lower", "upper", "initial", "value")]
    finite = [v for v in values if np.isfinite(v)]
    if not finite:
        return None
    lo, hi = min(finite), max(finite)
    pad = 0.06 * (hi - lo) if hi > lo else 0.05 * abs(hi) or 0.05
    return lo - pad, hi + pad


def _num(entry: Mapping, key: str) -> float:
    value = entry.get(key)
    return float("nan") if value is None else float(value)


@styled
def parameters_figure(parameters: Mapping, *, method: str = "") -> Figure:
    """Calibrated vs initial value of every parameter of every MTU, with bounds and SE.

    One panel per parameter, one row per MTU. Grey bar: bounds; open circle: initial value;
    filled dot with error bar: calibrated value ± SE (identifiability analysis; bars wider than
    the bounds are cut at the panel edge, the number is in the annotations); orange: flagged as
    poorly identifiable; red: the value ended at a bound.
    Records ``"<mtu>/<param>/value"``, ``".../se"``, ``".../at_bound"`` for every entry.
    """
    mtus: Mapping[str, Mapping] = parameters.get("mtus", {})
    names = parameter_names(mtus)
    flagged = flagged_parameters(parameters)
    n_rows, n_cols = grid_shape(len(names), max_cols=3)
    mtu_list = list(mtus)
    fig, axes = new_figure(n_rows, n_cols, panel_width_in=3.3,
                           panel_height_in=max(1.8, 0.26 * len(mtu_list) + 0.9), sharey=True)
    if not names:
        empty_panel(axes[0, 0], "parameters.json has no calibrated parameters")
        return fig
    ys = np.arange(len(mtu_list))
    for ax, name in zip(axes.flat, names, strict=False):
        limits = _limits([e[name] for e in mtus.values() if isinstance(e.get(name), Mapping)])
        for y, mtu in zip(ys, mtu_list, strict=True):
            entry = mtus[mtu].get(name)
            if not isinstance(entry, Mapping) or "value" not in entry:
                continue
            value, initial = _num(entry, "value"), _num(entry, "initial")
            lower, upper, se = _num(entry, "lower"), _num(entry, "upper"), _num(entry, "se")
            if np.isfinite(lower) and np.isfinite(upper):
                ax.plot([lower, upper], [y, y], color="#cccccc", linewidth=5,
                        solid_capstyle="butt", zorder=1)
            ax.plot(initial, y, "o", mfc="white", mec=COLORS["initial"], markersize=5, zorder=2)
            color = COLORS["calibrated"]
            if (mtu, name) in flagged:
                color = COLORS["poorly_identified"]
            if entry.get("at_bound"):
                color = COLORS["flag"]
            ax.errorbar(value, y, xerr=se if np.isfinite(se) else None, fmt="o", color=color,
                        markersize=4, capsize=2, elinewidth=0.8, alpha=0.9, zorder=3)
            key = f"{mtu}/{name}"
            record(fig, f"{key}/value", value)
            record(fig, f"{key}/se", se)
            record(fig, f"{key}/at_bound", bool(entry.get("at_bound")))
        ax.set_title(PARAMETER_LABELS.get(name, name))
        ax.grid(axis="y", visible=False)
        if limits is not None:
            ax.set_xlim(*limits)
    hide_unused(axes, len(names))
    for ax in axes[:, 0]:
        ax.set_yticks(ys, mtu_list)
        ax.set_ylim(len(mtu_list) - 0.5, -0.5)
    legend = [Line2D([], [], color="#cccccc", linewidth=5, label="bounds"),
              Line2D([], [], marker="o", linestyle="", mfc="white", mec=COLORS["initial"],
                     label="initial"),
              Line2D([], [], marker="o", linestyle="", color=COLORS["calibrated"],
                     label="calibrated ± SE"),
              Line2D([], [], marker="o", linestyle="", color=COLORS["poorly_identified"],
                     label="poorly identified"),
              Line2D([], [], marker="o", linestyle="", color=COLORS["flag"],
                     label="at a bound")]
    fig.legend(handles=legend, loc="outside lower center", ncols=5)
    n_at_bound = len(at_bound_list(parameters))
    n_flagged = len({pair for pair in flagged if pair[1] in names})
    record(fig, "n_at_bound", n_at_bound)
    record(fig, "n_poorly_identified", n_flagged)
    fig.suptitle(f"Calibrated parameters{f' — {method}' if method else ''} "
                 f"({n_at_bound} at a bound, {n_flagged} poorly identified)", x=0.02, ha="left")
    return fig


def flagged_parameters(parameters: Mapping) -> set[tuple[str, str]]:
    """(mtu, parameter) pairs flagged by the identifiability analysis of parameters.json.

    Accepts per-entry flags (``"identifiable": false`` or ``"flagged": true`` beside ``value``)
    and a top-level ``identifiability`` block listing ``"<mtu>/<param>"`` or
    ``{"mtu": .., "parameter": ..}`` items under ``flags`` / ``poorly_identified``.
    """
    flagged: set[tuple[str, str]] = set()
    for mtu, entry in parameters.get("mtus", {}).items():
        for name, item in entry.items():
            if isinstance(item, Mapping) and (item.get("identifiable") is False
                                              or item.get("flagged") is True):
                flagged.add((mtu, name))
    block = parameters.get("identifiability", {})
    items = []
    if isinstance(block, Mapping):
        for key in ("flags", "poorly_identified", "flagged"):
            value = block.get(key)
            if isinstance(value, list):
                items += value
    for item in items:
        if isinstance(item, str):
            pair = _split_flag(item)
            if pair is not None:
                flagged.add(pair)
        elif isinstance(item, Mapping) and "mtu" in item and "parameter" in item:
            flagged.add((str(item["mtu"]), _json_key(str(item["parameter"]))))
    return flagged


# Calibration kinds (config names) -> parameters.json keys.
KIND_TO_KEY = {"optimal_fiber_length": "optimal_fiber_length_m",
               "tendon_slack_length": "tendon_slack_length_m",
               "strength": "max_isometric_force_n"}


def _json_key(kind: str) -> str:
    return KIND_TO_KEY.get(kind, kind)


def _split_flag(label: str) -> tuple[str, str] | None:
    """``"mtu/param"``, ``"param/mtu"``, ``"param:mtu"`` or ``"mtu.param"`` -> (mtu, key)."""
    known = set(PARAMETER_LABELS) | set(KIND_TO_KEY)
    for sep in ("/", ":", "."):
        if sep in label:
            first, _, second = label.partition(sep)
            if first in known:
                return second, _json_key(first)
            return first, _json_key(second)
    return None


def _plain_number(value: float, _pos: int | None = None) -> str:
    return f"{value:g}"


def _two_and_five(value: float, _pos: int | None = None) -> str:
    """Label minor log ticks at 2 and 5 times a power of ten only."""
    if value <= 0:
        return ""
    mantissa = value / 10 ** np.floor(np.log10(value))
    return f"{value:g}" if np.isclose(mantissa, 2) or np.isclose(mantissa, 5) else ""


@styled
def loss_figure(results: Sequence[MethodResult]) -> Figure:
    """Loss against iteration and against wall-clock time, one line per method (log scale).

    Records ``"<method>/final_loss"`` and ``"<method>/iterations"``.
    """
    fig, axes = new_figure(1, 2, panel_width_in=3.8, panel_height_in=2.8)
    with_history = [r for r in results if "loss" in r.history and len(r.history["loss"])]
    if not with_history:
        empty_panel(axes[0, 0], "no history.tsv")
        empty_panel(axes[0, 1], "no history.tsv")
        return fig
    for result in with_history:
        loss = np.asarray(result.history["loss"], dtype=float)
        iteration = np.asarray(result.history.get("iteration", np.arange(len(loss))), float)
        color = METHOD_COLORS.get(result.method)
        marker = "o" if len(loss) < 3 else None  # a single summary row must stay visible
        axes[0, 0].plot(iteration, loss, color=color, marker=marker, label=result.method)
        elapsed = np.asarray(result.history.get("elapsed_s", []), dtype=float)
        if len(elapsed) == len(loss) and np.isfinite(elapsed).any():
            axes[0, 1].plot(elapsed, loss, color=color, marker=marker, label=result.method)
        record(fig, f"{result.method}/final_loss", float(loss[-1]))
        record(fig, f"{result.method}/iterations", int(iteration[-1]))
    for ax, xlabel in zip(axes[0], ("iteration / evaluation", "wall-clock time (s)"),
                          strict=True):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(_plain_number))
        ax.yaxis.set_minor_formatter(FuncFormatter(_two_and_five))
        ax.set_xlabel(xlabel)
        ax.set_ylabel("loss")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if not axes[0, 1].lines:
        empty_panel(axes[0, 1], "history.tsv has no elapsed_s values")
    axes[0, 0].set_title("loss per iteration")
    axes[0, 1].set_title("loss against time")
    fig.suptitle("Calibration convergence", x=0.02, ha="left")
    return fig


@styled
def method_comparison_figure(results: Sequence[MethodResult]) -> Figure:
    """Calibration time and validation accuracy of the methods that ran (e.g. gradient vs
    annealing). Records ``"<method>/wall_s"``, ``"<method>/mean_rmse_nm"``, ``".../mean_r2"``
    and ``"speedup"`` (annealing / gradient wall time) when both ran.
    """
    fig, axes = new_figure(1, 3, panel_width_in=2.4, panel_height_in=2.6)
    methods = [r.method for r in results]
    columns = (("wall_s", "calibration time (s)", "parameters"),
               ("mean_rmse_nm", "validation RMSE (N·m)", "metrics"),
               ("mean_r2", "validation R² (-)", "metrics"))
    for ax, (key, label, source) in zip(axes[0], columns, strict=True):
        values = []
        for result in results:
            block = result.parameters if source == "parameters" else result.metrics
            value = block.get(key)
            values.append(float("nan") if value is None else float(value))
            record(fig, f"{result.method}/{key}", values[-1])
        bars = ax.bar(methods, np.nan_to_num(values),
                      color=[METHOD_COLORS.get(m, "#777777") for m in methods])
        ax.bar_label(bars, labels=[f"{v:.3g}" for v in values], padding=2, fontsize=8)
        ax.set_title(label)
        ax.margins(y=0.15)
        ax.grid(axis="x", visible=False)
        ax.tick_params(axis="x", rotation=15)
    title = "Calibration methods"
    by_method = {r.method: r for r in results}
    if {"gradient", "annealing"} <= set(by_method):
        grad = by_method["gradient"].parameters.get("wall_s")
        anneal = by_method["annealing"].parameters.get("wall_s")
        if grad and anneal:
            speedup = float(anneal) / float(grad)
            record(fig, "speedup", speedup)
            title += f": gradient is {speedup:.1f}x faster than annealing"
    fig.suptitle(title, x=0.02, ha="left")
    return fig


def at_bound_list(parameters: Mapping) -> list[str]:
    """Calibrated parameters that ended at a bound, as parameters.json counts them (its
    ``at_bound`` list; the effective max isometric force and fixed parameters excluded)."""
    if isinstance(parameters.get("at_bound"), list):
        return [str(item) for item in parameters["at_bound"]]
    return [f"{mtu}.{name}" for mtu, entry in (parameters.get("mtus") or {}).items()
            for name, item in entry.items()
            if isinstance(item, Mapping) and item.get("at_bound") and item.get("calibrated", True)
            and name != "max_isometric_force_n"]
