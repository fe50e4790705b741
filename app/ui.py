"""The page: a banner, four tabs and the API endpoints, assembled around one `Service`.

    demo = build_demo(service)           # gr.Blocks; needs no model: the page says what is still loading
    launch(demo, host="127.0.0.1", port=7860, block=False)
    service.start()                      # the model stack and the default checkpoint, behind the page

The queue runs at most `concurrency` answers (Reason, Compare, /reason, /compare) at once, each one streaming
generator on the shared model; the rest wait their turn, while the page's other events (status, statistics, maps)
need no answer slot. Every user's sketches live in their own `gr.State`. With `mcp=True` the named endpoints are
also served as MCP tools (Gradio's `mcp_server`, at /gradio_api/mcp/).
"""

import gradio as gr

from app import api, explorer_tab, reason_tab, render, stats_tab, sweeps_tab
from app.example_puzzles import EXAMPLES_DIR
from app.service import Service

MAX_UPLOAD = "25mb"  # above model.inputs.MAX_IMAGE_BYTES (20 MB), so files between get InputError's own message
CSS = """
#banner { background: #fef3c7; border: 1px solid #f59e0b; border-radius: 8px; padding: 4px 12px; }
#answer h3 { margin: 4px 0; }
"""
CSS += render.CSS
MAP_CLICK_JS = """
<script>
/* Clicking a point of a sketch map (#map, #explorer-map) writes its customdata ("g:<row>" or "s:<sketch>") into the
   hidden textbox <id>-click and presses the hidden button <id>-click-go, whose event shows that point. */
(() => {
  const hook = (plot, id) => {
    if (plot.dataset.clickHooked || typeof plot.on !== "function") return;
    plot.dataset.clickHooked = "1";
    plot.on("plotly_click", (event) => {
      const point = event.points && event.points[0];
      const box = document.querySelector(`#${id}-click textarea, #${id}-click input`);
      const go = document.querySelector(`#${id}-click-go`);
      if (!point || point.customdata === undefined || !box || !go) return;
      box.value = String(point.customdata);
      box.dispatchEvent(new Event("input", { bubbles: true }));
      setTimeout(() => go.click(), 50);
    });
  };
  const scan = () => ["map", "explorer-map"].forEach((id) =>
    document.querySelectorAll(`#${id} .js-plotly-plot`).forEach((plot) => hook(plot, id)));
  new MutationObserver(scan).observe(document.documentElement, { childList: true, subtree: true });
})();
</script>
"""
INTRO = (
    "# Modal-mixed chain-of-thought\n"
    "A vision-language model that reasons in text interleaved with **latent sketches**: after ⟨START⟩ it writes "
    "K continuous embeddings drawn by a small diffusion head, then ⟨END⟩ and text again. Pick a puzzle, ask, and "
    "watch it reason; each sketch is a step you can open, shown decoded (when the checkpoint has a decoder), next to "
    "its nearest gallery pictures and on a UMAP map of the sketch space. **Compare modes** runs the same puzzle with "
    "the sketches replaced (noise, zeros, another puzzle's, the true ones) or left out."
)


def build_demo(service: Service, concurrency: int = 2) -> gr.Blocks:
    with gr.Blocks(title="Modal-mixed CoT") as demo:
        gr.Markdown(INTRO)
        banner = gr.Markdown("", visible=False, elem_id="banner")  # filled in once the checkpoint is loaded
        session = gr.State(reason_tab.new_session())
        with gr.Tabs():
            with gr.Tab("Reason", id="reason"):
                reason = reason_tab.build(service, session, banner, concurrency)
            with gr.Tab("Explorer", id="explorer") as tab:
                explorer_tab.build(service, session, reason["checkpoint"], tab)
            with gr.Tab("Switching statistics", id="stats") as tab:
                stats_tab.build(service, tab)
            with gr.Tab("Sweeps", id="sweeps") as tab:
                sweeps_tab.build(service, tab, reason)
        api.register(service, concurrency)
    return demo


def launch(demo: gr.Blocks, host: str | None, port: int | None, block: bool = True, mcp: bool = False,
           quiet: bool = False):  # fmt: skip
    """Queue and serve; host/port None: Gradio's GRADIO_SERVER_NAME/PORT (as Spaces sets them) or its defaults.
    `block=False` returns once the server answers (the caller then calls `demo.block_thread()`)."""
    demo.queue(default_concurrency_limit=None, max_size=256)  # answers carry their own limit (build_demo)
    return demo.launch(
        server_name=host,
        server_port=port,
        max_file_size=MAX_UPLOAD,
        allowed_paths=[str(EXAMPLES_DIR)],  # the example pictures are served from the repository
        prevent_thread_lock=not block,
        footer_links=["api", "gradio", "settings"],
        css=CSS,
        head=MAP_CLICK_JS,  # clicks on the sketch maps reach the server
        quiet=quiet,
        mcp_server=mcp,
    )
