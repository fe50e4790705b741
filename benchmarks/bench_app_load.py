"""App benchmarks: cold start of `python -m app`, then 16 concurrent `gradio_client` clients calling /reason.

    python benchmarks/bench_app_load.py [--checkpoint tiny] [--clients 16] [--requests 3] [--write-readme]
    python benchmarks/bench_app_load.py --url http://127.0.0.1:7860/      # load only, a server already running
    python benchmarks/bench_app_load.py --cold-start-only                 # the cold start table alone

Cold start (`--cold-checkpoint`, default the shipped assets/checkpoints/demo): `python -m app` in a new process with
an empty `--cache-dir`, as a newly shipped checkpoint meets it, timed from the process start to (1) the page
answering HTTP 200, (2) the first /reason answer (asked as soon as the page is up: it waits for the model, which
loads behind the page), and (3) the gallery and map being ready (a /neighbours call waits for them). Then the same
again with the cache the first start left (gallery vectors, UMAP map, numba's kernels). Targets: (1) within 8 s and
(2) within 12 s. Beside them, the same run times `python -c "import gradio"` in a new process: the floor under (1)
on this machine at this moment (the machine is shared, so absolute times move with its load).

Starts `python -m app` on a free loopback port (unless --url is given), waits until it serves, then each client
thread asks `--requests` questions about shipped examples (families in turn, a seed per request). Every request
must be answered without error. Latency is measured at the client, from submit to the Trace: it includes the
queue, so with `--concurrency` answers computed at a time and 16 clients most of it is waiting. Reports p50 / p90
/ p99 latency, the slowest request, and answers per second over the whole run.

Simplified: the clients are threads of this process (gradio_client is I/O bound); the server's own timings
(`Trace.timings`) are summarised beside, so queueing and compute can be told apart.
"""

import argparse
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
              per_family: int | None = None) -> tuple[str, subprocess.Popen]:  # fmt: skip
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
    command += ["--event-store", str(work / "events"), "--gallery-per-family", str(per_family)]
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
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the app did not start; see {work / 'server.log'}")


def cold_start(args, work: Path, cache_dir: str) -> dict:
    """Seconds from starting `python -m app` to the page, to its first answer and to a ready gallery."""
    start = time.perf_counter()
    url, process = start_app(args, work, args.cold_checkpoint, cache_dir, args.cold_per_family)
    page, page_cpu = time.perf_counter() - start, cpu_seconds(process.pid)
    try:
        client = Client(url, verbose=False)
        trace = client.predict(example_id="maze-1", max_new_tokens=args.cold_max_new_tokens, include_latents=True,
                               api_name="/reason")  # fmt: skip
        answer, answer_cpu = time.perf_counter() - start, cpu_seconds(process.pid)
        if not trace["num_sketches"]:  # oracle inserts maze-1's true sketch when the model sketches at all
            trace = client.predict(example_id="maze-1", mode="oracle", include_latents=True, api_name="/reason")
        sketch = next((s["latents"] for s in trace["segments"] if s["kind"] == "sketch"), None)
        gallery = None
        if sketch is not None:
            client.predict(latents=sketch, k=5, api_name="/neighbours")  # waits for the gallery and the map
            gallery = time.perf_counter() - start
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "page_s": page,
        "answer_s": answer,
        "gallery_s": gallery,
        "page_cpu_s": page_cpu,
        "answer_cpu_s": answer_cpu,
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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used: on a machine shared with other jobs, wall time
    grows with their load and this does not."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def cold_start_table(args, work: Path) -> str:
    cache = tempfile.mkdtemp(prefix="bench-cold-cache-")
    gradio_s = import_gradio_s()
    print(f'python -c "import gradio": {gradio_s:.1f} s', flush=True)
    runs = [("empty cache (a new checkpoint)", cold_start(args, work, cache))]
    runs.append(("cache from the first start", cold_start(args, work, cache)))
    rows = [
        [
            args.cold_checkpoint_name,
            label,
            f"{r['page_s']:.1f}",
            f"{r['answer_s']:.1f}",
            "-" if r["gallery_s"] is None else f"{r['gallery_s']:.1f}",
        ]  # fmt: skip
        for label, r in runs
    ]
    header = ["checkpoint", "start", "page up s", "first answer s", "gallery + map ready s"]
    note = (
        f"\n\nCold start of `python -m app` (new process, imports included), targets: page <= 8 s, first answer "
        f'<= 12 s; `python -c "import gradio"` took {gradio_s:.1f} s in the same run; gallery of '
        f"{args.cold_per_family} instances per family; first answer: maze-1, {args.cold_max_new_tokens} new "
        f"positions; load average {os.getloadavg()[0]:.1f} at the end."
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
    parser.add_argument("--cold-max-new-tokens", type=int, default=128)
    parser.add_argument("--skip-cold-start", action="store_true")
    parser.add_argument("--cold-start-only", action="store_true", help="the cold start table alone")
    parser.add_argument("--write-readme", action="store_true")
    args = parser.parse_args(argv)
    args.cold_checkpoint_name = display_name(args.cold_checkpoint, Path(args.cold_checkpoint))
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
