"""Write the demo results into README.md and the figures into assets/figures/, from the stored evaluation files.

    python -m model.report

Reads assets/results/*.json (evaluation summaries copied by model/ship.py), assets/results/timings.json (stage wall
times) and assets/checkpoints/registry.json; writes the block between `<!-- results:start -->` and
`<!-- results:end -->` in README.md and plotly figures (HTML, and PNG when kaleido can render) in assets/figures/.
No number in that block is typed by hand; each claim the issue asks about is checked against the numbers and
reported as it came out.
"""

import json
import re
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
RESULTS, FIGURES = ROOT / "assets" / "results", ROOT / "assets" / "figures"
MODES = ["direct", "text-only", "auto", "noise-latents", "oracle", "majority", "random"]
SKETCH_FAMILIES = ["connect", "maze", "fold", "jigsaw", "tilt"]


def load_summary(name: str) -> pd.DataFrame | None:
    path = RESULTS / f"{name}.json"
    return pd.DataFrame(json.loads(path.read_text())["summary"]) if path.exists() else None


def pct(x) -> str:
    return "–" if x is None or pd.isna(x) else f"{100 * x:.1f}"


def accuracy_table(summary: pd.DataFrame) -> str:
    pivot = summary.pivot_table(index="family", columns="mode", values="accuracy", aggfunc="first")
    modes = [m for m in MODES if m in pivot.columns]
    families = [f for f in pivot.index if f != "overall"] + ["overall"]
    lines = ["| family | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for fam in families:
        lines.append(f"| {fam} | " + " | ".join(pct(pivot.loc[fam, m]) for m in modes) + " |")
    return "\n".join(lines)


def overall(summary: pd.DataFrame, mode: str, column: str = "accuracy", family: str = "overall"):
    rows = summary[(summary["mode"] == mode) & (summary["family"] == family)]
    return None if rows.empty else rows.iloc[0][column]


def behaviour_table(sft: pd.DataFrame, grpo: pd.DataFrame | None) -> str:
    lines = ["| family | START rate SFT | START rate GRPO | sketches/answer SFT | sketches/answer GRPO |",
             "|---|---|---|---|---|"]  # fmt: skip
    for fam in sorted(set(sft["family"]) - {"overall"}) + ["overall"]:
        cells = []
        for column, show in (("start_rate", pct), ("sketches_per_answer", lambda x: f"{x:.2f}")):
            for summary in (sft, grpo):
                value = None if summary is None else overall(summary, "auto", column, fam)
                cells.append("–" if value is None or pd.isna(value) else show(value))
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def latency_table(named: dict[str, pd.DataFrame]) -> str:
    lines = [
        "| model | mode | accuracy % | latency / sample (s) | latent MSE | latent cosine |",
        "|---|---|---|---|---|---|",
    ]
    for name, summary in named.items():
        for mode in MODES[:5]:
            if overall(summary, mode) is None:
                continue
            mse, cos = overall(summary, mode, "latent_mse"), overall(summary, mode, "latent_cosine")
            mse = "–" if pd.isna(mse) else f"{mse:.4f}"
            cos = "–" if pd.isna(cos) else f"{cos:.3f}"
            latency = overall(summary, mode, "latency_mean_s")
            lines.append(f"| {name} | {mode} | {pct(overall(summary, mode))} | {latency:.3f} | {mse} | {cos} |")
    return "\n".join(lines)


def claims(sft: pd.DataFrame, textonly: pd.DataFrame | None, table: pd.DataFrame | None) -> list[str]:
    out = []
    acc = lambda mode, fam: overall(sft, mode, "accuracy", fam)  # noqa: E731
    if textonly is not None:  # text-only CoT = the model trained on text-only traces, decoding in text-only mode
        cot = lambda fam: overall(textonly, "text-only", "accuracy", fam)  # noqa: E731
        wins = [f for f in SKETCH_FAMILIES if acc("auto", f) is not None and acc("auto", f) > cot(f)]
        ties = [f for f in SKETCH_FAMILIES if acc("auto", f) is not None and acc("auto", f) == cot(f)]
        out.append(f"Modal-mixed SFT (auto) beats text-only CoT (the text-only-trained model) on {len(wins)} of "
                   f"{len(SKETCH_FAMILIES)} sketch families ({', '.join(wins) or 'none'}; ties: "
                   f"{', '.join(ties) or 'none'}); overall {pct(acc('auto', 'overall'))} % vs "
                   f"{pct(cot('overall'))} %.")  # fmt: skip
    a, n = acc("auto", "overall"), acc("noise-latents", "overall")
    out.append(
        f"auto {pct(a)} % vs noise-latents {pct(n)} % overall: the model "
        f"{'does' if a - n > 0.05 else 'does not clearly'} use its sketches (margin {100 * (a - n):+.1f} points)."
    )
    o, d = acc("oracle", "overall"), acc("direct", "overall")
    out.append(f"oracle {pct(o)} % vs direct {pct(d)} % overall (true sketches inserted vs answering at once).")
    if table is not None and not table.empty:
        from analysis.sweeps import vs_budget, vs_lambda

        by_k = vs_budget(table, "accuracy", diffusion_loss_weight=1.0)
        if "overall" in by_k.index:
            row = by_k.loc["overall"].dropna()
            rising = list(row.values) == sorted(row.values)
            out.append("Accuracy vs K (auto, overall): " + ", ".join(f"K={k}: {pct(v)} %" for k, v in row.items())
                       + (" — rises with K." if rising else " — does not rise monotonically with K."))  # fmt: skip
        by_l = vs_lambda(table, "accuracy", latent_budget=32)
        if "overall" in by_l.index:
            row = by_l.loc["overall"].dropna()
            best = row.idxmax() if len(row) else None
            out.append("Accuracy vs λ (auto, overall): " + ", ".join(f"λ={k:g}: {pct(v)} %" for k, v in row.items())
                       + (f" — λ = 1 is {'not worse than' if row.get(1.0, -1) >= row.max() - 1e-9 else 'worse than'}"
                          f" the best (λ = {best:g})." if best is not None else ""))  # fmt: skip
    return out


def figures(sft: pd.DataFrame, table: pd.DataFrame | None) -> list[str]:
    import plotly.express as px

    from analysis import figures as F
    from analysis.sweeps import vs_budget, vs_lambda

    FIGURES.mkdir(parents=True, exist_ok=True)
    made = {}
    data = sft[sft["family"] != "overall"]
    title = "Accuracy per family and mode (demo SFT, test split)"
    made["accuracy_per_family_and_mode"] = px.bar(
        data, x="family", y="accuracy", color="mode", barmode="group", title=title
    )
    if table is not None and not table.empty:
        made["accuracy_vs_k"] = F.metric_vs_budget(vs_budget(table, "accuracy", diffusion_loss_weight=1.0))
        made["accuracy_vs_lambda"] = F.metric_vs_lambda(vs_lambda(table, "accuracy", latent_budget=32))
    written = []
    for name, fig in made.items():
        fig.write_html(FIGURES / f"{name}.html", include_plotlyjs="cdn")
        try:
            fig.write_image(FIGURES / f"{name}.png", width=900, height=500)
            written.append(f"![{name}](assets/figures/{name}.png)")
        except Exception as err:  # kaleido needs a Chrome it can drive; the HTML is always written
            print(f"PNG export of {name} skipped: {err}")
            written.append(f"[{name}](assets/figures/{name}.html)")
    return written


def main() -> int:
    sft, grpo = load_summary("sft"), load_summary("grpo")
    if sft is None:
        print("error: assets/results/sft.json is missing; run python -m model.demo_pipeline first", file=sys.stderr)
        return 2
    timings_path = RESULTS / "timings.json"
    timings = json.loads(timings_path.read_text()) if timings_path.exists() else {}
    table = None
    registry = ROOT / "assets" / "checkpoints" / "registry.json"
    if registry.exists():
        from analysis.sweeps import load_registry, metrics_table

        entries = load_registry(registry)
        entries["checkpoints"] = [e for e in entries["checkpoints"] if e["name"].startswith("sweep/")]
        table = metrics_table(entries)
    parts = ["### Wall time of each stage (2-core CPU)", "",
             "| stage | minutes |", "|---|---|"]  # fmt: skip
    parts += [f"| {k} | {v / 60:.1f} |" for k, v in timings.items()]
    core = [k for k in ("data", "warmup", "sft", "grpo") if k in timings]
    parts += [f"| **data → warm-up → SFT → GRPO** | **{sum(timings[k] for k in core) / 60:.1f}** |", ""]
    describe = RESULTS / "warmup_describe.json"
    if describe.exists():
        probe = json.loads(describe.read_text())
        per = ", ".join(f"{f} {pct(v)} %" for f, v in sorted(probe["per_family"].items()))
        accuracy = pct(probe["cell_accuracy"])
        parts += [f"Stage-0 check (`python -m model.describe_eval`, {probe['images']} validation images): dense "
                  f"descriptions get **{accuracy} %** of the 64 cells right ({per}).", ""]  # fmt: skip
    n = int(overall(sft, "auto", "n") or 0)
    parts += ["### Accuracy (%) on the held-out test split, demo SFT", "",
              f"{n} test examples ({n // 6} per family), greedy decoding, T = the checkpoint's default. `text-only` "
              "here is this model with ⟨START⟩ banned (it was not trained on text-only traces; the text-only CoT "
              "baseline is the separate text-only-trained model in the latency table below).", "",
              accuracy_table(sft), ""]  # fmt: skip
    if grpo is not None:
        parts += ["### Accuracy (%) after GRPO", "", accuracy_table(grpo), ""]
    parts += [
        "### START rate and sketches per answer (auto), before vs after GRPO",
        "",
        behaviour_table(sft, grpo),
        "",
    ]
    named = {k: v for k, v in [("SFT", sft), ("GRPO", grpo), ("SFT, head removed", load_summary("sft-language-only")),
                               ("text-only-trained", load_summary("textonly"))] if v is not None}  # fmt: skip
    parts += ["### Latency, reconstruction error and the language-only check", "", latency_table(named), ""]
    parts += ["### What held and what did not", ""] + [f"- {c}" for c in claims(sft, load_summary("textonly"), table)]
    parts += [""]
    parts += ["### Figures", ""] + figures(sft, table)
    block = "\n".join(parts)
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = re.compile(r"<!-- results:start -->.*?<!-- results:end -->", re.DOTALL)
    if not pattern.search(text):
        print("error: README.md has no <!-- results:start --> … <!-- results:end --> block", file=sys.stderr)
        return 2
    readme.write_text(pattern.sub(lambda _: f"<!-- results:start -->\n{block}\n<!-- results:end -->", text))
    print(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
