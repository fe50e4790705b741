"""Plotly figure builders for the analysis tables. Reshaping only: every number comes from `switching`, `sweeps`
or `projection`, so a figure and the table it plots can never disagree.

    fig = start_rate_bar(switching.start_rate(events, by=["family"]))
    fig.show()   # or fig.write_html("start_rate.html")
    sweep_panel(sweeps.panel(spec, table, demo_k))   # a Sweeps-tab panel: lines or grouped bars, 95 % error bars

Simplified: one default look (plotly_white); colours follow plotly's default sequence.
"""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

_TEMPLATE = "plotly_white"


def start_rate_bar(rates: pd.DataFrame, color: str | None = None) -> go.Figure:
    """Bars of START rate per family from `switching.start_rate(events, by=["family", ...])`."""
    fig = px.bar(
        rates, x="family", y="start_rate", color=color, barmode="group", hover_data=["num_answers"], template=_TEMPLATE
    )
    fig.update_layout(yaxis_title="answers with >= 1 sketch", yaxis_range=[0, 1])
    return fig


def start_position_histogram(histogram: pd.DataFrame, color: str | None = "family") -> go.Figure:
    """Bars of the fraction of START events per relative-position bin, from `switching.start_position_histogram`."""
    frame = histogram.assign(position=(histogram["bin_start"] + histogram["bin_end"]) / 2)
    color = color if color in frame.columns else None
    width = float((histogram["bin_end"] - histogram["bin_start"]).iloc[0]) if len(histogram) else 0.1
    fig = px.bar(
        frame, x="position", y="fraction", color=color, barmode="group", hover_data=["count"], template=_TEMPLATE
    )
    fig.update_traces(width=width / max(1, frame[color].nunique() if color else 1))
    fig.update_layout(xaxis_title="relative position of ⟨START⟩ in the answer", yaxis_title="fraction of sketches")
    return fig


def accuracy_vs_sketches(table: pd.DataFrame, color: str | None = "family") -> go.Figure:
    """Accuracy against number of sketches per answer, from `switching.accuracy_vs_sketches`."""
    color = color if color in table.columns else None
    fig = px.line(
        table,
        x="num_sketches",
        y="accuracy",
        color=color,
        markers=True,
        hover_data=["num_answers", "num_graded"],
        template=_TEMPLATE,
    )
    fig.update_layout(xaxis_title="sketches in the answer", yaxis_title="accuracy", yaxis_range=[0, 1])
    return fig


ROLE_SYMBOLS = {"problem": "circle", "reasoning": "diamond"}  # problem and reasoning pictures differ in shape


def sketch_map(points: pd.DataFrame, sketches: pd.DataFrame | None = None) -> go.Figure:
    """UMAP scatter of gallery images (colour = family, shape = role: circles for problem pictures, outlined
    diamonds for reasoning pictures) with sketches as large stars.

    `points` is `Projection.points(gallery)` (x, y, family, role, key); `sketches` has x, y and optional label and
    point columns. Each marker's customdata is its `point` value when given (default "g:<row>" for gallery rows and
    "s:<i>" for sketches), so a click handler can tell which point was chosen.
    """
    colours = px.colors.qualitative.Plotly
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
                    marker={"symbol": symbol, "size": 9, "color": colours[number % len(colours)], "line": outline},
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
    fig = px.line(long, x=axis, y="value", color="family", markers=True, template=_TEMPLATE)
    fig.update_layout(xaxis_title=axis_title, yaxis_title=y_title)
    return fig


AXIS_TITLES = {
    "latent_budget": "latent budget K (latents per sketch)",
    "diffusion_loss_weight": "diffusion loss weight λ",
    "head_type": "latent head",
    "sketch_decoding": "sketch decoding",
}
METRIC_TITLES = {"accuracy": "accuracy", "use": "auto − noise-latents", "latency_s": "latency per answer (s)"}


def sweep_panel(panel) -> go.Figure:
    """A `sweeps.Panel`: one line per family against K or λ (log axes: the grid doubles K and steps λ tenfold), or
    for the head and decoding ablations grouped bars per family; 95 % intervals as error bars where the registry
    has them; the title says what the panel holds fixed."""
    data, axis, metric = panel.data, panel.spec.axis, panel.spec.metric
    errors = {"plus": data["high"] - data["value"], "minus": data["value"] - data["low"]}
    frame = data.assign(**errors)
    style = dict(template=_TEMPLATE, error_y="plus", error_y_minus="minus", hover_data=["name", "low", "high"])
    if axis in ("head_type", "sketch_decoding"):
        fig = px.bar(frame, x="family", y="value", color=axis, barmode="group", **style)
        fig.update_layout(xaxis_title="family", legend_title=AXIS_TITLES[axis])
    else:
        fig = px.line(frame, x=axis, y="value", color="family", markers=True, **style)
        ticks = sorted(frame[axis].unique())
        fig.update_xaxes(type="log", tickvals=ticks, ticktext=[f"{t:g}" for t in ticks], title=AXIS_TITLES[axis])
    fig.update_layout(title={"text": panel.title, "font": {"size": 14}}, yaxis_title=METRIC_TITLES.get(metric, metric))
    if metric in ("accuracy", "use"):
        fig.update_yaxes(tickformat=".0%")
    return fig
