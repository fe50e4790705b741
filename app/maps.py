"""The sketch map as the page shows it: `analysis.figures.sketch_map` of the gallery with the sketches as stars,
given room so that nothing is clipped: the axes reach a margin past the outermost point (a star's label sits above
it), the stars may draw over the axes' edge, and the legend lies under the plot, where it has the page's width (beside
the plot it was cut off and scrolled).

    figure = map_figure(points, [{"x": 1.0, "y": 2.0, "label": "s1", "point": "s:0"}])
"""

import pandas as pd
import plotly.graph_objects as go

from analysis.figures import sketch_map

HEIGHT_PX = 620  # plot and legend
PAD = 0.08  # of each axis' span, on both sides; the top gets twice as much, for the labels above the stars


def map_figure(points: pd.DataFrame, stars: list[dict]) -> go.Figure:
    """The map of the gallery `points` (x, y, family, role, key) with `stars` (x, y, label, point) placed on it."""
    frame = pd.DataFrame(stars, columns=["x", "y", "label", "point"])
    figure = sketch_map(points, frame)
    xs, ys = [*points["x"], *frame["x"]], [*points["y"], *frame["y"]]
    (x0, x1), (y0, y1) = _padded(xs), _padded(ys)
    figure.update_xaxes(range=[x0, x1])
    figure.update_yaxes(range=[y0, y1 + PAD * (y1 - y0)])
    figure.update_traces(cliponaxis=False, selector={"name": "sketches"})
    figure.update_layout(
        height=HEIGHT_PX,
        margin={"l": 50, "r": 20, "t": 20, "b": 20},
        legend={"orientation": "h", "yanchor": "top", "y": -0.12, "x": 0, "xanchor": "left"},
    )
    return figure


def _padded(values: list[float]) -> tuple[float, float]:
    low, high = float(min(values)), float(max(values))
    span = (high - low) or 1.0
    return low - PAD * span, high + PAD * span
