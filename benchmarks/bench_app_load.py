"""App benchmarks: cold start of `python -m app` with its first answer split into parts, then 16 concurrent
`gradio_client` clients calling /reason.

    python benchmarks/bench_app_load.py [--checkpoint tiny] [--clients 16] [--requests 3] [--write-readme]
    python benchmarks/bench_app_load.py --url http://127.0.0.1:7860/      # load only, a server already running
    python benchmarks/bench_app_load.py --cold-start-only [--conditions quiet,busy] [--paths worker,in-process]
                                                                          # the cold start table alone

Cold start (`--cold-checkpoint`, default the shipped assets/checkpoints/demo): `python -m app` in a new process, timed
from the process start to the page answering HTTP 200; the model worker's model code imported and checkpoint loaded
(app/worker.py: a second process, started before gradio is imported, that answers until the app's own model is
loaded), then the app's own (the server's log lines); the first /reason answer of the example maze-1 (asked as soon
as the page answers) and who gave it, the worker or the app; and the gallery and map being ready (a /neighbours call
waits for them). `--paths`: `worker`, the app as it starts, first with an empty `--cache-dir` (a newly shipped
checkpoint), then with the cache that start left (gallery vectors, UMAP map, numba's kernels); `in-process`, the app
with `--no-worker` on that cache (the model code imported behind the page in the app's own process: the path before
the worker, for comparison in the same run). The first answer is split into its parts: waiting for the answering
process's model code and checkpoint, the Trace's own prefill, text decoding and sketches, and the rest (queue,
checks, logging, transfer). `--conditions`: on the machine as it is ("quiet") and beside one process that keeps a
core busy ("busy", a Python loop), each with `python -c "import gradio"` timed in a new process under the same
conditions: the floor under the page, and the unit of the ratios (the machine is shared, so absolute times move with
its load; the table gives the load average at each start). Targets: first answer <= 8 s after the start on a quiet
machine, <= 2x that beside one busy process.

Starts `python -m app` on a free loopback port (unless --url is given), waits until it serves, then each client
thread asks `--requests` questions about shipped examples (families in turn, a seed per request). Every request
must be answered without error. Latency is measured at the client, from submit to the Trace: it includes the
queue, so with `--concurrency` answers computed at a time and 16 clients most of it is waiting. Reports p50 / p90
/ p99 latency, the slowest request, and answers per second over the whole run.

Simplified: the clients are threads of this process (gradio_client is I/O bound); the server's own timings
(`Trace.timings`) are summarised beside, so queueing and compute can be told apart.
"""

import argparse
import datetime
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from gradio_client import Client

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from app.example_puzzles import load_examples  # noqa: E402
from app.service import DEFAULT_CHECKPOINT, display_name  # noqa: E402
from benchmarks.doc_tables import markdown_table, write_section  # noqa: E402

EXAMPLES = [ex.id for ex in load_examples().values() if ex.id.endswith("-1")]  # one shipped puzzle per family


def start_app(args, work: Path, checkpoint: str | None = None, cache_dir: str | None = None,
              per_family: int | None = None, extra: tuple[str, ...] = ()) -> tuple[str, subprocess.Popen]:  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "app", "--checkpoint", checkpoint or args.checkpoint, "--host", "127.0.0.1"]
    command += [
        "--port",
        str(port),
        "--concurrency",
        str(args.concurrency),
        "--cache-dir",
        cache_dir or args.cache_dir,
    ]
    per_family = per_family or args.gallery_per_family
    command += ["--event-store", str(work / "events"), "--gallery-per-family", str(per_family), *extra]
    log = open(work / "server.log", "w")
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + args.startup_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return url, process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the app did not start; see {work / 'server.log'}")


def busy_neighbour() -> subprocess.Popen:
    """One process that keeps one core busy (a Python loop), as another job sharing the machine would."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


WORKER = "[model worker] "  # how the model worker's log lines start, after the time (app/worker.py)
MARKS = {  # the server's log lines each time is read from: (key, text, from the worker)
    "stack": ("app model code imported", False),  # the app's own process
    "loaded": ("loaded; serving", False),
    "worker_stack": ("app model code imported", True),  # the model worker's
    "worker_loaded": ("loaded; answering", True),
    "worker_answered": ("app.worker answered", True),
}


def log_times(log: Path) -> dict[str, float]:
    """Wall-clock times (time.time()) of the server's startup lines, the app's and its model worker's (MARKS)."""
    found = {}
    for line in log.read_text().splitlines():
        for key, (text, worker) in MARKS.items():
            if key not in found and text in line and (WORKER in line) == worker:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                found[key] = stamp.timestamp()
    return found


def cold_start(args, work: Path, cache_dir: str, busy: bool = False, worker: bool = True) -> dict:
    """Seconds from starting `python -m app` to the page, the model worker's model code and checkpoint, the app's,
    the first answer (asked as soon as the page answers) and a ready gallery; the first answer split into its parts
    and who gave it. `busy`: beside one process that keeps a core busy; `worker=False`: `--no-worker`."""
    neighbour = busy_neighbour() if busy else None
    load = os.getloadavg()[0]
    try:
        began = time.time()
        extra = () if worker else ("--no-worker",)
        url, process = start_app(args, work, args.cold_checkpoint, cache_dir, args.cold_per_family, extra)
        page = time.time() - began
        try:
            client = Client(url, verbose=False)
            asked = time.time()
            trace = client.predict(example_id="maze-1", include_latents=True, api_name="/reason")
            answered = time.time()
            marks = log_times(work / "server.log")
            sketch = next((s["latents"] for s in trace["segments"] if s["kind"] == "sketch"), None)
            gallery = None
            if sketch is not None:
                client.predict(latents=sketch, k=5, api_name="/neighbours")  # waits for the gallery and the map
                gallery = time.time() - began
            marks = log_times(work / "server.log")  # the app's own model is loaded by now (the gallery needs it)
        finally:
            process.terminate()
            process.wait(timeout=30)
    finally:
        if neighbour is not None:
            neighbour.kill()
            neighbour.wait()
    timings = trace["timings"]
    by_worker = marks.get("worker_answered", answered + 1) <= answered
    ready = marks.get("worker_loaded" if by_worker else "loaded", asked)  # the answering model's checkpoint loaded
    waited = max(0.0, ready - asked)  # the request waited for it
    return {
        "load": load,
        "page_s": page,
        "worker_stack_s": marks["worker_stack"] - began if "worker_stack" in marks else None,
        "worker_loaded_s": marks["worker_loaded"] - began if "worker_loaded" in marks else None,
        "stack_s": marks.get("stack", began) - began,
        "loaded_s": marks.get("loaded", began) - began,
        "asked_s": asked - began,
        "answer_s": answered - began,
        "by": "worker" if by_worker else "app",
        "waited_s": waited,
        "prefill_s": timings["prefill_s"],
        "text_s": timings["decode_s"] - timings["sketch_s"],
        "sketch_s": timings["sketch_s"],
        "other_s": answered - asked - waited - timings["total_s"],
        "correct": trace["correct"],
        "gallery_s": gallery,
    }


def import_gradio_s(repeats: int = 2) -> float:
    """Seconds `python -c "import gradio"` takes in a new process (the best of `repeats`)."""
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import gradio"], check=True, env=env, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return min(times)


def _seconds(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def cold_start_table(args, work: Path) -> str:
    """The cold start, quiet and beside one busy process: with the model worker from an empty cache (a newly shipped
    checkpoint) and with the cache that start left, then (`--paths`) without a worker on that cache; `import
    gradio` timed in the same conditions, for the ratios."""
    rows = []
    for condition in args.conditions:
        busy = condition == "busy"
        neighbour = busy_neighbour() if busy else None
        try:
            gradio_s = import_gradio_s()
        finally:
            if neighbour is not None:
                neighbour.kill()
                neighbour.wait()
        cache = tempfile.mkdtemp(prefix="bench-cold-cache-")
        runs = [("worker", "empty"), ("worker", "warm")] if "worker" in args.paths else [("in-process", "empty")]
        runs += [("in-process", "warm")] if "in-process" in args.paths else []
        for path, label in runs:
            r = cold_start(args, work, cache, busy, worker=path == "worker")
            where = "beside one busy process" if busy else "quiet"
            print(f"{where}, {path}, {label} cache: {r}", flush=True)
            rows.append([where, path, label, f"{r['load']:.1f}", f"{gradio_s:.1f}", f"{r['page_s']:.1f}",
                         _seconds(r["worker_stack_s"]), _seconds(r["worker_loaded_s"]), f"{r['stack_s']:.1f}",
                         f"{r['loaded_s']:.1f}", f"{r['answer_s']:.1f}", r["by"], f"{r['answer_s'] / gradio_s:.1f}×",
                         f"{r['asked_s']:.1f}", f"{r['waited_s']:.1f}", f"{r['prefill_s']:.2f}", f"{r['text_s']:.2f}",
                         f"{r['sketch_s']:.2f}", f"{r['other_s']:.2f}", _seconds(r["gallery_s"])])  # fmt: skip
    header = ["machine", "path", "cache", "load avg", "import gradio s", "page up s", "worker: model code s",
              "worker: checkpoint s", "app: model code s", "app: checkpoint s", "first answer s", "answered by",
              "÷ import gradio", "asked at s", "waited for the model s", "prefill s", "text s", "sketches s",
              "other s", "gallery + map s"]  # fmt: skip
    note = (
        f"\n\nCold start of `python -m app --checkpoint {args.cold_checkpoint_name}` (a new process; every time is "
        "seconds after it started). Path `worker`: the app as it starts, with the model worker (app/worker.py), a "
        "second process started before gradio is imported, which imports the model code and loads the checkpoint "
        "while the app imports gradio and serves the page, and answers until the app has loaded its own; "
        "`in-process`: `--no-worker`, the app alone (the model code imported behind the page, in the same process). "
        "The page answering, the worker's and the app's model code imported and checkpoint loaded, the first "
        "/reason answer of the example maze-1 (asked as soon as the page answers, app defaults) and who answered it, "
        "and the gallery and map ready (built by the app, after its own checkpoint). The first answer's parts: "
        "waiting for the answering process's model code and checkpoint, then the Trace's own timings (prefill, text "
        "decoding, sketches) and the rest (queue, checks, logging, transfer, the client's connection). `import "
        "gradio` in a new process under the same conditions; the busy process is one Python loop. Load average: "
        f"1-minute, at each start; {os.cpu_count()} CPU cores. Targets: first answer <= 8 s quiet, <= 2x that "
        f"beside one busy process; gallery of {args.cold_per_family} instances per family."
    )
    return markdown_table(header, rows) + note


def run_clients(url: str, args) -> tuple[list[float], list[dict], list[str], float]:
    latencies, timings, errors = [], [], []
    lock = threading.Lock()
    barrier = threading.Barrier(args.clients)

    def client_loop(number: int) -> None:
        try:
            client = Client(url, verbose=False)
        except Exception as err:  # reported with the others; a client that cannot connect is a failure
            with lock:
                errors.append(f"client {number}: {err}")
            barrier.abort()
            return
        try:
            barrier.wait()  # every client connected before the first request: the load starts at once
        except threading.BrokenBarrierError:
            return
        for i in range(args.requests):
            example = EXAMPLES[(number + i) % len(EXAMPLES)]
            start = time.perf_counter()
            try:
                trace = client.predict(
                    example_id=example,
                    seed=number * 1000 + i,
                    max_new_tokens=args.max_new_tokens,
                    api_name="/reason",
                )
            except Exception as err:  # every failure is counted and printed
                with lock:
                    errors.append(f"client {number} request {i} ({example}): {err}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)
                timings.append(trace["timings"])

    threads = [threading.Thread(target=client_loop, args=(n,)) for n in range(args.clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, timings, errors, time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="tiny", help="what the started app serves")
    parser.add_argument("--url", default=None, help="benchmark a running app instead of starting one")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--concurrency", type=int, default=2, help="the started app's --concurrency")
    parser.add_argument("--gallery-per-family", type=int, default=10)
    parser.add_argument("--cache-dir", default="cache/app")
    parser.add_argument("--startup-s", type=float, default=300)
    parser.add_argument("--cold-checkpoint", default=DEFAULT_CHECKPOINT, help="what the cold start serves")
    parser.add_argument("--cold-per-family", type=int, default=40, help="the cold start's gallery (the app default)")
    parser.add_argument("--conditions", default="quiet,busy", help="quiet, busy (beside one busy process) or both")
    parser.add_argument(
        "--paths",
        default="worker,in-process",
        help="worker (the app as it starts: empty and warm cache), in-process (--no-worker, warm cache), or both",
    )
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--cold-start-only", action="store_true", help="the cold start table alone")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    args.cold_checkpoint_name = display_name(args.cold_checkpoint, Path(args.cold_checkpoint))
    args.conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    if not set(args.conditions) <= {"quiet", "busy"}:
        raise SystemExit(f"--conditions takes quiet, busy or both, got {args.conditions}")
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not args.paths or not set(args.paths) <= {"worker", "in-process"}:
        raise SystemExit(f"--paths takes worker, in-process or both, got {args.paths}")
    if args.write_readme and (args.skip_cold_start or args.cold_start_only or args.url):
        raise SystemExit("--write-readme needs the whole run (no --skip-cold-start, --cold-start-only or --url)")

    process = None
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    cold = ""
    if not args.skip_cold_start:
        print(f"cold start of python -m app --checkpoint {args.cold_checkpoint_name} …", flush=True)
        cold = cold_start_table(args, work)
        print(cold, flush=True)
        if args.cold_start_only:
            return 0
    url = args.url
    if url is None:
        print(f"starting python -m app --checkpoint {args.checkpoint} …", flush=True)
        url, process = start_app(args, work)
    try:
        latencies, timings, errors, wall = run_clients(url, args)
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=30)
    total = args.clients * args.requests
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    if not latencies:
        print("no request was answered", file=sys.stderr)
        return 1
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    compute = np.median([t["total_s"] for t in timings])
    rows = [
        [
            args.checkpoint if args.url is None else url,
            f"{args.clients} × {args.requests}",
            args.concurrency if args.url is None else "?",
            f"{len(latencies)}/{total}",
            f"{p50:.2f}",
            f"{p90:.2f}",
            f"{p99:.2f}",
            f"{max(latencies):.2f}",
            f"{compute:.2f}",
            f"{len(latencies) / wall:.2f}",
        ]
    ]
    header = ["checkpoint", "clients × requests", "concurrency", "answered", "p50 s", "p90 s", "p99 s", "max s"]
    header += ["median compute s", "answers/s"]
    table = markdown_table(header, rows)
    cpus = os.cpu_count()
    note = (
        f"\n\n{args.max_new_tokens} new positions per answer, greedy; latency at the client (queue included); "
        f"{cpus} CPU cores, no GPU."
        if args.url is None
        else ""
    )
    print(table + note)
    if args.write_readme:
        write_section("app", cold + "\n\n" + table + note)
    return 0 if not errors and len(latencies) == total else 1


if __name__ == "__main__":
    sys.exit(main())
