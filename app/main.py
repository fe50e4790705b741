"""Start the app: `python -m app [--checkpoint NAME] [--host 127.0.0.1] [--port 7860] [--mcp]`.

Also the Hugging Face Spaces entry point (`app_file: app/main.py` in the README front matter): Spaces runs
`python app/main.py`, so this file makes the repository importable itself, and leaves host and port to Gradio's
GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which Spaces sets.

The model comes first: before gradio is imported, `main` starts the model worker (app/worker.py), a second process
that imports the model stack (torch, transformers, the model) and loads the default checkpoint on another core, while
this process imports gradio (4-5 s) and serves the page from the page's modules alone (app/stack.py). Both imports
are Python bytecode, which one process runs a thread at a time: in one process the stack came only after the page.
Until this process has imported the stack and loaded the checkpoint itself (behind the page, once it is up), the
worker answers /reason and the Reason tab for the default checkpoint (app/answers.py: the same checks, Trace and
streamed steps, and the same event store); then it ends, after its answers in flight. It ends with the app however
the app ends (it reads the end of its link: Ctrl-C, SIGTERM, kill -9). A worker that cannot start or ends early
leaves the answers to this process, as `--no-worker` does, and as ZeroGPU Spaces do (`spaces` runs the GPU work).
Requests that need the model and go to neither wait for it, and the page says how far it is. Each answer runs on
`--threads` CPU threads: by default the cores shared among the `--concurrency` answers that run at once (one each on
two cores), since two threads per answer on two cores wait for each other at every op, more so beside any other
busy process; the gallery's UMAP (numba) gets as many, so that building it leaves the other cores to the answers. A
default checkpoint that cannot be loaded ends the process with its message (exit status 2), as before the page came
first. The checkpoint's gallery (built on the first start, then read from `--cache-dir`) and UMAP map follow in the
background. Without a trained checkpoint at the default path the `demo-random` preset (random weights) stands in,
and the page says so.

`--mcp` also serves the named endpoints as MCP tools (Gradio's `mcp_server=True`; the tool list is at
/gradio_api/mcp/). `--debug-sketch-bias FLOAT` is test-only (hidden from --help): it adds FLOAT to the ⟨START⟩
logit so that a model with random weights sketches, which the client and browser tests need.
"""

import argparse
import logging
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script (Spaces): import from the repository, not from app/
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from app.worker_client import ModelWorker  # noqa: E402  (the standard library only: the rest comes in serve)
from model.core.paths import DEFAULT_CHECKPOINT, DEFAULT_REGISTRY  # noqa: E402

log = logging.getLogger("app")
WORKER_HEAD_START_S = 60  # the longest this process waits for the worker before importing the model stack itself


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m app", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint",
        default=DEFAULT_CHECKPOINT,
        help="demo (the trained model, default), a registered name, a folder, a hub id, or tiny / demo-random "
        "(random weights)",
    )
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860, or the next free one)")
    parser.add_argument("--cache-dir", default="cache/app", help="gallery and map cache")
    parser.add_argument("--event-store", default="cache/events", help="where answers' switch events are appended")
    parser.add_argument(
        "--registry", default=None, help="checkpoint registry (default assets/checkpoints/registry.json)"
    )
    parser.add_argument("--gallery-per-family", type=int, default=40, help="sketch-world instances per family")
    parser.add_argument("--concurrency", type=int, default=2, help="answers computed at the same time")
    parser.add_argument(
        "--max-models", type=int, default=3, help="checkpoints kept loaded: the default and the most recent others"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads per answer (default: OMP_NUM_THREADS, else the cores shared among --concurrency answers)",
    )
    parser.add_argument("--mcp", action="store_true", help="also serve the named endpoints as MCP tools")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="no model worker process: the first answer waits for this process to import the model stack",
    )
    parser.add_argument("--debug-sketch-bias", type=float, default=0.0, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def cpu_threads(concurrency: int) -> int:
    """Torch threads per answer: OMP_NUM_THREADS when set, else the CPU cores shared among the answers that run at
    once. On 2 cores, two threads per answer (torch's default) stall each other and anything else on the machine:
    a thread waiting at each op's barrier for one that is descheduled (benchmarks/bench_app_load.py)."""
    if os.environ.get("OMP_NUM_THREADS", "").isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        return int(os.environ["OMP_NUM_THREADS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // concurrency)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    if min(args.gallery_per_family, args.concurrency, args.max_models, args.threads or 1) < 1:
        print("error: --gallery-per-family, --concurrency, --max-models and --threads must be >= 1", file=sys.stderr)
        return 2
    threads = args.threads or cpu_threads(args.concurrency)
    os.environ.setdefault("NUMBA_NUM_THREADS", str(threads))  # the gallery's map (UMAP), before numba is imported
    fields = dict(  # ServiceConfig's, for this process and the worker (app.service is imported in serve)
        checkpoint=args.checkpoint,
        cache_dir=args.cache_dir,
        event_store=args.event_store,
        registry=args.registry or DEFAULT_REGISTRY,
        gallery_per_family=args.gallery_per_family,
        max_models=args.max_models,
        device=args.device,
        debug_sketch_bias=args.debug_sketch_bias,
        threads=threads,
    )
    zero_gpu = os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")  # as `spaces` reads it
    worker = None if args.no_worker or zero_gpu else ModelWorker.start(fields)
    try:
        return serve(args, fields, worker)
    finally:
        if worker is not None:
            worker.close()


def serve(args: argparse.Namespace, fields: dict, worker: ModelWorker | None) -> int:
    """The page, then this process's own model stack and default checkpoint (exit status 2 when it cannot load)."""
    # Imported here, after the worker has started: gradio's import takes this process 4-5 s, which the worker's start
    # must not wait for (the imports in a function outside app/stack.py, for that reason). On ZeroGPU Spaces,
    # `spaces` is best imported before torch (it patches CUDA initialisation), so it comes first.
    import spaces  # noqa: F401, I001
    from app.service import Service, ServiceConfig
    from app.ui import build_demo, launch

    service = Service(ServiceConfig(**fields), worker)
    demo = build_demo(service, concurrency=args.concurrency)
    if worker is None:
        service.start()  # the stack's imports use the time launch spends waiting (from here: launch mostly waits)
    else:
        service.stage = "waiting for the model worker, which loads the checkpoint and answers meanwhile"
    launch(demo, args.host, args.port, block=False, mcp=args.mcp)
    if worker is not None:  # the cores go to the worker (and to the first requests) until it is ready to answer;
        worker.wait_ready(WORKER_HEAD_START_S)  # anything that needs this process's model starts its stack sooner
    service.start()
    try:
        service.wait_default()
    except ValueError as err:  # CheckpointError: the default checkpoint cannot be loaded
        print(f"error: {err}", file=sys.stderr)
        demo.close()
        return 2
    if worker is not None:
        worker.retire()  # it ends once its answers in flight are done
    log.info("checkpoint %s loaded; serving", service.default_name)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
