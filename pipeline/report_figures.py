"""The report's figures (assets/figures/): the audit per family and accuracy against K and λ on the sweep grid."""

import plotly.express as px

from analysis import figures as F
from analysis.sweeps import load_registry, metrics_table, vs_budget, vs_lambda
from model.generation.modes import mode_names
from pipeline.layout import ASSETS, DEMO_K

FIGURES = ASSETS / "figures"


def figures(final) -> list[str]:
    """The audit per family (`final`: the shipped model's pipeline.report Result) and the sweep grid's own axes, as
    HTML and PNG under assets/figures/; the Markdown links to them, from docs/."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    made = {}
    data = final.summary[(final.summary["family"] != "overall") & final.summary["mode"].isin(mode_names())]
    if not data.empty:
        data = data.assign(low=data["accuracy"] - data["ci_low"], high=data["ci_high"] - data["accuracy"])
        made["audit_per_family"] = px.bar(
            data,
            x="family",
            y="accuracy",
            color="mode",
            barmode="group",
            error_y="high",
            error_y_minus="low",
            title="The audit: accuracy per family and mode (test split, 95 % CI)",
        )
    registry = ASSETS / "checkpoints" / "registry.json"
    if registry.exists():
        entries = load_registry(registry)  # an older recipe's sweep points are not this recipe's sweep
        entries["checkpoints"] = [e for e in entries["checkpoints"] if e["name"].startswith("sweep/")
                                  and e.get("recipe") != "previous"]  # fmt: skip
        table = metrics_table(entries)
        if not table.empty:  # the grid's own axes: K at λ = 1, λ at the K where the grid varies it; diffusion head,
            # the grid's decoding (a grid trained before parallel decoding is sequential)
            held = dict(head_type="diffusion", sketch_decoding=table["sketch_decoding"].mode().iloc[0])
            lambdas = table.groupby("latent_budget")["diffusion_loss_weight"].nunique()
            k_of_lambda = int(lambdas.idxmax()) if lambdas.max() > 1 else DEMO_K
            by_k = vs_budget(table, "accuracy", diffusion_loss_weight=1.0, **held)
            by_lambda = vs_lambda(table, "accuracy", latent_budget=k_of_lambda, **held)
            if not by_k.empty:  # an empty frame would draw empty axes
                made["accuracy_vs_k"] = F.metric_vs_budget(by_k)
            if not by_lambda.empty:
                made["accuracy_vs_lambda"] = F.metric_vs_lambda(by_lambda)
    for stale in FIGURES.glob("*.*"):  # a figure this run does not make must not linger from an older one
        if stale.stem not in made:
            stale.unlink()
    written = []
    for name, fig in made.items():
        # a fixed div id: the same results give the same file (plotly draws a random one per call)
        fig.write_html(FIGURES / f"{name}.html", include_plotlyjs="cdn", div_id=name)
        try:
            fig.write_image(FIGURES / f"{name}.png", width=900, height=500)
            written.append(f"![{name}](../assets/figures/{name}.png)")
        except Exception as err:  # kaleido needs a Chrome it can drive; the HTML is always written
            print(f"PNG export of {name} skipped: {err}")
            written.append(f"[{name}](../assets/figures/{name}.html)")
    return written
