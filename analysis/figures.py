"""Plotly figure builders for the analysis tables. Reshaping only: every number comes from `switching`, `sweeps`
or `projection`, so a figure and the table it plots can never disagree.

    fig = start_rate_bar(switching.start_rate(events, by=["family"]))
    fig.show()   # or fig.write_html("start_rate.html")
    sweep_panel(sweeps.panel(spec, table, demo_k))   # a Sweeps-tab panel: lines or grouped bars, 95 % error bars

Built from `plotly.graph_objects` alone: `plotly.express` costs a fifth of a second to import, and the app's page
imports this module before it is served (app/stats_tab.py, app/sweeps_tab.py).

Simplified: one default look (plotly_white); colours follow plotly's default sequence.
"""

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

_TEMPLATE = "plotly_white"
COLOURS = qualitative.Plotly
DODGE = 0.3  # the share of the gap between neighbouring x values that one group of lines spreads over


def _colour(number: int) -> str:
    return COLOURS[number % len(COLOURS)]


def _groups(frame: pd.DataFrame, color: str | None) -> list[tuple[str | None, pd.DataFrame]]:
    """(name, rows) per value of `color` in order of appearance; one unnamed group without it."""
    if color is None or color not in frame.columns:
        return [(None, frame)]
    return [(str(value), frame[frame[color] == value]) for value in dict.fromkeys(frame[color])]


def _hover(frame: pd.DataFrame, columns: list[str]) -> tuple[list, str]:
    """customdata and the hover lines naming `columns` (shown as `name: value`)."""
    lines = "<br>".join(f"{column}: %{{customdata[{i}]}}" for i, column in enumerate(columns))
    return frame[columns].values.tolist(), lines


def _bars(frame: pd.DataFrame, x: str, y: str, color: str | None, hover: list[str]) -> go.Figure:
    fig = go.Figure()
    for number, (name, rows) in enumerate(_groups(frame, color)):
        data, lines = _hover(rows, hover)
        fig.add_trace(go.Bar(x=rows[x], y=rows[y], name=name, customdata=data, marker_color=_colour(number),
                             hovertemplate=f"{x}: %{{x}}<br>{y}: %{{y}}<br>{lines}<extra>{name or ''}</extra>",
                             showlegend=name is not None))  # fmt: skip
    fig.update_layout(template=_TEMPLATE, barmode="group", legend_title=color or "")
    return fig


def start_rate_bar(rates: pd.DataFrame, color: str | None = None) -> go.Figure:
    """Bars of START rate per family from `switching.start_rate(events, by=["family", ...])`."""
    fig = _bars(rates, "family", "start_rate", color, ["num_answers"])
    fig.update_layout(yaxis_title="answers with >= 1 sketch", yaxis_range=[0, 1])
    return fig


def start_position_histogram(histogram: pd.DataFrame, color: str | None = "family") -> go.Figure:
    """Bars of the fraction of START events per relative-position bin, from `switching.start_position_histogram`."""
    frame = histogram.assign(position=(histogram["bin_start"] + histogram["bin_end"]) / 2)
    color = color if color in frame.columns else None
    width = float((histogram["bin_end"] - histogram["bin_start"]).iloc[0]) if len(histogram) else 0.1
    fig = _bars(frame, "position", "fraction", color, ["count"])
    fig.update_traces(width=width / max(1, frame[color].nunique() if color else 1))
    fig.update_layout(xaxis_title="relative position of ⟨START⟩ in the answer", yaxis_title="fraction of sketches")
    return fig


def accuracy_vs_sketches(table: pd.DataFrame, color: str | None = "family") -> go.Figure:
    """Accuracy against number of sketches per answer, from `switching.accuracy_vs_sketches`."""
    fig = go.Figure()
    for number, (name, rows) in enumerate(_groups(table, color)):
        data, lines = _hover(rows, ["num_answers", "num_graded"])
        hover = f"sketches: %{{x}}<br>accuracy: %{{y}}<br>{lines}<extra></extra>"
        fig.add_trace(go.Scatter(x=rows["num_sketches"], y=rows["accuracy"], mode="lines+markers", name=name,
                                 customdata=data, line_color=_colour(number), showlegend=name is not None,
                                 hovertemplate=hover))  # fmt: skip
    fig.update_layout(template=_TEMPLATE, xaxis_title="sketches in the answer", yaxis_title="accuracy",
                      yaxis_range=[0, 1], legend_title=color or "")  # fmt: skip
    return fig


ROLE_SYMBOLS = {"problem": "circle", "reasoning": "diamond"}  # problem and reasoning pictures differ in shape


def sketch_map(points: pd.DataFrame, sketches: pd.DataFrame | None = None) -> go.Figure:
    """UMAP scatter of gallery images (colour = family, shape = role: circles for problem pictures, outlined
    diamonds for reasoning pictures) with sketches as large stars.

    `points` is `Projection.points(gallery)` (x, y, family, role, key); `sketches` has x, y and optional label and
    point columns. Each marker's customdata is its `point` value when given (default "g:<row>" for gallery rows and
    "s:<i>" for sketches), so a click handler can tell which point was chosen.
    """
    families = list(dict.fromkeys(points["family"]))
    point_ids = points["point"] if "point" in points.columns else [f"g:{i}" for i in range(len(points))]
    points = points.assign(point=list(point_ids))
    fig = go.Figure()
    for number, family in enumerate(families):
        for role, symbol in ROLE_SYMBOLS.items():
            part = points[(points["family"] == family) & (points["role"] == role)]
            if part.empty:
                continue
            outline = {"width": 1.5, "color": "#1f2937"} if role == "reasoning" else {"width": 0}
            fig.add_trace(
                go.Scatter(
                    x=part["x"],
                    y=part["y"],
                    mode="markers",
                    name=f"{family} · {role}",
                    legendgroup=family,
                    customdata=part["point"],
                    text=part["key"],
                    hovertemplate="%{text}<extra></extra>",
                    marker={"symbol": symbol, "size": 9, "color": _colour(number), "line": outline},
                    opacity=0.75,
                )
            )
    if sketches is not None and len(sketches):
        default = [f"sketch {i + 1}" for i in range(len(sketches))]
        labels = sketches["label"] if "label" in sketches.columns else default
        ids = sketches["point"] if "point" in sketches.columns else [f"s:{i}" for i in range(len(sketches))]
        fig.add_trace(
            go.Scatter(
                x=sketches["x"],
                y=sketches["y"],
                mode="markers+text",
                text=list(labels),
                customdata=list(ids),
                textposition="top center",
                name="sketches",
                marker={"symbol": "star", "size": 18, "color": "black", "line": {"width": 1, "color": "white"}},
            )
        )
    fig.update_layout(
        template=_TEMPLATE, xaxis_title="UMAP 1", yaxis_title="UMAP 2", legend_title="family · role", clickmode="event"
    )
    return fig


def metric_vs_budget(pivot: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """One line per family of `metric` against K, from `sweeps.vs_budget`."""
    return _lines(pivot, "latent_budget", "latent budget K (latents per sketch)", metric)


def metric_vs_lambda(pivot: pd.DataFrame, metric: str = "accuracy") -> go.Figure:
    """One line per family of `metric` against λ, from `sweeps.vs_lambda`."""
    return _lines(pivot, "diffusion_loss_weight", "diffusion loss weight λ", metric)


def latency_vs_budget(pivot: pd.DataFrame) -> go.Figure:
    """Latency against K, from `sweeps.vs_budget(table, "latency_s")`."""
    return _lines(pivot, "latent_budget", "latent budget K (latents per sketch)", "latency (s)")


def _lines(pivot: pd.DataFrame, axis: str, axis_title: str, y_title: str) -> go.Figure:
    long = pivot.reset_index().melt(id_vars="family", var_name=axis, value_name="value").dropna()
    fig = go.Figure()
    for number, (name, rows) in enumerate(_groups(long, "family")):
        fig.add_trace(go.Scatter(x=rows[axis], y=rows["value"], mode="lines+markers", name=name,
                                 line_color=_colour(number)))  # fmt: skip
    fig.update_layout(template=_TEMPLATE, xaxis_title=axis_title, yaxis_title=y_title, legend_title="family")
    return fig


AXIS_TITLES = {
    "latent_budget": "latent budget K (latents per sketch)",
    "diffusion_loss_weight": "diffusion loss weight λ",
    "head_type": "latent head",
    "sketch_decoding": "sketch decoding",
}
AXIS_WORDS = {"latent_budget": "K", "diffusion_loss_weight": "λ", "head_type": "head", "sketch_decoding": "decoding"}
METRIC_TITLES = {"accuracy": "accuracy", "use": "auto − noise-latents", "latency_s": "latency per answer (s)"}


def sweep_panel(panel) -> go.Figure:
    """A `sweeps.Panel`: one line per family against K or λ (log axes: the grid doubles K and steps λ tenfold), or
    for the head and decoding ablations grouped bars per family; 95 % intervals as error bars where the registry
    has them, every family's as the overall curve's: the lines are spread a little sideways around each x value,
    so that no interval hides another. Hovering a point names it, its interval and its training; the title says
    what the panel holds fixed."""
    data, axis, metric = panel.data, panel.spec.axis, panel.spec.metric
    percent = metric in ("accuracy", "use")
    frame = data.assign(plus=data["high"] - data["value"], minus=data["value"] - data["low"])
    frame = frame.assign(shown=frame.apply(lambda row: _value_text(row, percent), axis=1))
    frame["training"] = frame["training"] if "training" in frame.columns else ""
    hover = f"<b>%{{customdata[0]}}</b><br>{AXIS_WORDS[axis]} = %{{customdata[1]}}<br>%{{customdata[2]}}"
    hover += "<br>trained: %{customdata[4]}"  # its training, a line per part: a wide label would be cut off
    fig = go.Figure()
    bars = axis in ("head_type", "sketch_decoding")
    groups = _groups(frame, axis if bars else "family")
    offsets = _dodge(sorted(frame[axis].unique()), len(groups)) if not bars else None
    for number, (name, rows) in enumerate(groups):
        errors = _errors(rows)
        custom = rows[["name", axis, "shown", "training"]].astype(str)
        custom = custom.assign(lines=custom["training"].str.replace(", ", "<br>", regex=False)).values.tolist()
        common = dict(name=name, customdata=custom, error_y=errors, hovertemplate=hover + f"<extra>{name}</extra>")
        if bars:
            fig.add_trace(go.Bar(x=rows["family"], y=rows["value"], marker_color=_colour(number), **common))
        else:
            x = [value * offsets[number] for value in rows[axis]]
            fig.add_trace(go.Scatter(x=x, y=rows["value"], mode="lines+markers", line_color=_colour(number), **common))
    if bars:
        fig.update_layout(barmode="group", xaxis_title="family", legend_title=AXIS_TITLES[axis])
    else:
        ticks = sorted(frame[axis].unique())
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], title=AXIS_TITLES[axis])
        fig.update_layout(legend_title="family")
    fig.update_layout(template=_TEMPLATE, title={"text": panel.title, "font": {"size": 14}},
                      yaxis_title=METRIC_TITLES.get(metric, metric))  # fmt: skip
    if percent:
        fig.update_yaxes(tickformat=".0%")
    return fig


def _errors(rows: pd.DataFrame) -> dict:
    """Asymmetric error bars from the rows' plus / minus (none where the registry has no interval)."""
    if rows[["plus", "minus"]].isna().all().all():
        return {"visible": False}
    plus, minus = ([None if pd.isna(v) else float(v) for v in rows[side]] for side in ("plus", "minus"))
    return {"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "thickness": 1.5, "width": 3}


def _dodge(values: list[float], groups: int) -> list[float]:
    """A factor per group that moves its points sideways on the log axis, within DODGE of the smallest gap between
    neighbouring x values, so that groups drawn at the same x keep their intervals apart."""
    gaps = [math.log(b / a) for a, b in zip(values, values[1:]) if a > 0 and b > a]
    gap = min(gaps) if gaps else math.log(2)
    if groups < 2:
        return [1.0]
    step = DODGE * gap / (groups - 1)
    return [math.exp((i - (groups - 1) / 2) * step) for i in range(groups)]


def _value_text(row: pd.Series, percent: bool) -> str:
    """The value as the hover shows it, "41 % [35–47 %]" or "1.59 s", the 95 % interval where there is one."""
    number = (lambda v: f"{100 * v:.0f}") if percent else (lambda v: f"{v:.2f}")
    unit = " %" if percent else " s"
    if pd.isna(row["low"]) or pd.isna(row["high"]):
        return number(row["value"]) + unit
    return f"{number(row['value'])}{unit} [{number(row['low'])}–{number(row['high'])}{unit}]"
