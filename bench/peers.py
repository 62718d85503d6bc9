"""fastrnn vs PyTorch vs ONNX Runtime on the standard shapes, in one process; prints a Markdown table.

    python bench/peers.py [--shapes small,medium,...] [--cells lstm,gru] [--modes inference,training]
                          [--backends numba,cython] [--threads 2] [--repeats 5]
                          [--sections table,threads,memory,compile,coldstart,serve,denormals,step,dask,charlm]
                          [--markdown-out FILE]

Every system runs on the same inputs and the same initial weights, with the same thread count
(Numba and NumPy's BLAS for fastrnn, ``torch.set_num_threads``, ONNX Runtime ``intra_op_num_threads``
with ``inter_op_num_threads=1``). Inference = forward over the whole sequence (PyTorch under
``torch.no_grad``); training step = forward, MSE on the last output through a linear head, backward,
Adam update (ONNX Runtime: inference only). Each call is timed once cold ("first call", includes JIT
compilation the first time a kernel family is used in the process) and then, after a warm-up, as the
fastest single call over ``--repeats`` repeats of at least ``--min-time`` seconds each. Ratios are peer ms / fastrnn ms: above 1 means fastrnn is
faster. GFLOP/s counts ``2*T*B*G*H*(I+H)`` per layer for inference and 3x that for training, less the
bottom layer's input gradient (``shapes.step_flops``); "% peak"
divides by the sgemm GFLOP/s measured at the same thread count in the same run: the faster of NumPy's
BLAS and, where installed, ONNX Runtime's MatMul. Under the sgemm
table, the issue-5 targets are checked against this run's figures (``targets.py``).
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from shapes import CELLS, MEMORY_SHAPE, MODES, SHAPES, make_inputs, step_flops  # noqa: E402
import cold_start  # noqa: E402
import denormals  # noqa: E402
import serve  # noqa: E402
import targets  # noqa: E402
from timing import blas_architecture, format_ms, onnxruntime_sgemm_gflops, sgemm_gflops, time_call  # noqa: E402

SECTIONS = ("table", "threads", "memory", "compile", "coldstart", "serve", "denormals", "step", "dask", "charlm")
# Sections that are scripts of their own, run as they are and their Markdown output included as it is.
SCRIPT_SECTIONS = {
    "step": ("One recurrent step at B=1 (bench/step.py)", ["step.py", "--markdown"]),
    "dask": (None, ["dask_throughput.py"]),  # prints its own heading
    "charlm": ("Character-level LM, fastrnn vs PyTorch at equal time (bench/charlm.py --minutes 2)",
               ["charlm.py", "--minutes", "2"]),
}
COOL_DOWN_S = 0.3
SERVE_SECONDS = 3.0


def _csv(value, allowed, what):
    items = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise SystemExit(f"--{what}: unknown {unknown}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv):
    from fastrnn.kernels import BACKENDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--backends", default=None,
                        help="fastrnn backends (default: every available one except 'reference')")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds each repeat lasts at least (fast calls run several times)")
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--markdown-out", default=None)
    parser.add_argument("--isolate", action="store_true",
                        help="time each system of the main table in its own process (no shared thread pools)")
    parser.add_argument("--passes", type=int, default=1,
                        help="with --isolate: time every system this many times, in alternating order, and keep "
                             "each cell's fastest pass (a noisy spell on a shared machine then slows one pass of "
                             "one system instead of deciding a ratio)")
    parser.add_argument("--only-system", default=None, help=argparse.SUPPRESS)  # used by --isolate
    parser.add_argument("--json-out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.shapes = _csv(args.shapes, SHAPES, "shapes")
    args.cells = _csv(args.cells, CELLS, "cells")
    args.modes = _csv(args.modes, MODES, "modes")
    args.sections = _csv(args.sections, SECTIONS, "sections")
    if args.backends is not None:
        args.backends = _csv(args.backends, BACKENDS, "backends")
    if args.threads < 1 or args.repeats < 1:
        raise SystemExit("--threads and --repeats must be at least 1")
    return args


# ---------------------------------------------------------------- environment
def numba_vectors():
    """The vector width fastrnn's Numba kernels may use here (fastrnn/kernels/_numba/_vector_width.py)."""
    try:
        from fastrnn.kernels._numba import _vector_width
    except ImportError:
        return "numba not available"
    return _vector_width.describe()


def gemm_policy():
    """Which code runs fastrnn's float32 GEMMs around the time loops here (fastrnn/kernels/_gemm.py)."""
    try:
        from fastrnn.kernels import _gemm
        return _gemm.describe()
    except ImportError:
        return "NumPy's BLAS"


def machine_description():
    model, cores = platform.processor() or platform.machine(), os.cpu_count()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        model = fields.get("Model name", model).strip()
        if "CPU family" in fields and "Model" in fields:  # tells apart CPU generations sold under one name
            model += f" (family {fields['CPU family'].strip()}, model {fields['Model'].strip()})"
        cores = fields.get("CPU(s)", cores)
        cores = str(cores).strip()
        flags = fields.get("Flags", "")
        simd = [f for f in ("avx2", "fma", "avx512f") if f in flags.split()]
    except (OSError, subprocess.CalledProcessError):
        simd = []
    return f"{model}, {cores} logical CPUs" + (f" ({'+'.join(simd).upper()})" if simd else "")


def versions(peers):
    import numba
    import numpy

    import fastrnn

    out = {"python": platform.python_version(), "numpy": numpy.__version__, "numba": numba.__version__,
           "fastrnn": getattr(fastrnn, "__version__", "?")}
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../fastrnn"],
                               capture_output=True, text=True, check=True).stdout.strip()
        out["fastrnn"] += f" (git {commit}{', uncommitted changes in fastrnn/' if dirty else ''})"
    except (OSError, subprocess.CalledProcessError):
        pass
    checkout = os.path.realpath(os.path.join(HERE, "..", "fastrnn"))
    if os.path.realpath(os.path.dirname(fastrnn.__file__)) != checkout:
        # A non-editable install shadows the checkout: the figures would not be this commit's
        out["fastrnn"] += f" imported from {os.path.dirname(fastrnn.__file__)}, NOT this checkout"
    out.update({k: v for k, v in peers.items() if v})
    try:
        from fastrnn.kernels._cython import BUILD
        out["fastrnn Cython build"] = BUILD  # the AVX2 build or the portable one (FASTRNN_CYTHON_BUILD)
    except ImportError:
        pass
    return out


def load_average():
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "?"


# ---------------------------------------------------------------- measurements
def measure(label, fn, args, notes):
    """``(first_ms, best_ms)`` of ``fn``, or None (with a note) if it raises.

    A short pause first lets the previous system's idle threads stop spinning: PyTorch and Numba's
    ``omp`` layer load two different libgomp runtimes, and one's spin-waiting workers slow the other.
    """
    time.sleep(COOL_DOWN_S)
    try:
        first, best = time_call(fn, repeats=args.repeats, min_time=args.min_time)
    except Exception as exc:  # a broken kernel is reported in the table, not hidden
        notes.append(f"{label}: {type(exc).__name__}: {exc}")
        return None
    return first * 1e3, best * 1e3


def table_systems(backends, peers):
    """System names of the main table: ``torch``, ``onnxruntime`` (when importable) and ``fastrnn[b]``."""
    systems = ["torch"] if peers["torch"] else []
    systems += ["onnxruntime"] if peers["onnxruntime"] and peers["torch"] else []
    return systems + [f"fastrnn[{b}]" for b in backends]


def time_systems(args, systems, notes):
    """``{(shape, cell, mode, system): (first_ms, best_ms) | None | "no kernels"}`` in this process."""
    from runners import backend_supports, fastrnn_call, onnx_call, reference_state, torch_call

    timings = {}
    for shape_name in args.shapes:
        shape = SHAPES[shape_name]
        for cell in args.cells:
            x, y = make_inputs(shape)
            state = reference_state(shape, cell)
            for mode in args.modes:
                label = f"{shape_name}/{cell}/{mode}"
                for system in systems:
                    key = (shape_name, cell, mode, system)
                    if system == "onnxruntime" and mode != "inference":
                        continue
                    try:
                        if system == "torch":
                            call = torch_call(shape, cell, mode, x, y, state)
                        elif system == "onnxruntime":
                            call = onnx_call(shape, cell, x, state, args.threads)
                        else:
                            backend = system[len("fastrnn["):-1]
                            reason = backend_supports(backend, cell)
                            if reason:
                                timings[key] = "no kernels"
                                notes.append(f"{label} {system}: {reason}")
                                continue
                            call = fastrnn_call(shape, cell, mode, backend, x, y, state)
                    except Exception as exc:
                        notes.append(f"{label} {system} setup: {type(exc).__name__}: {exc}")
                        timings[key] = None
                        continue
                    timings[key] = measure(f"{label} {system}", call, args, notes)
                    shown = timings[key] and f"{timings[key][1]:.3f} ms"
                    print(f"  {label} {system}: {shown}", file=sys.stderr, flush=True)
    return timings


def time_systems_isolated(args, systems, notes):
    """Like :func:`time_systems`, but each system in its own fresh process (``--isolate``), ``--passes``
    times with the systems' order reversed on every other pass; each cell keeps its fastest call over
    the passes (and the first call of the first pass)."""
    timings = {}
    for number in range(args.passes):
        for system in (systems if number % 2 == 0 else systems[::-1]):
            _time_system_isolated(args, system, notes, timings)
    return timings


def _time_system_isolated(args, system, notes, timings):
    """One fresh process timing ``system``; merges its timings into ``timings`` (fastest kept)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        argv = [os.path.abspath(__file__), "--shapes", ",".join(args.shapes), "--cells", ",".join(args.cells),
                "--modes", ",".join(args.modes), "--threads", str(args.threads), "--repeats", str(args.repeats),
                "--min-time", str(args.min_time), "--only-system", system, "--json-out", out.name]
        proc = subprocess.run([sys.executable, *argv], stdout=subprocess.DEVNULL, stderr=None)
        if proc.returncode != 0:
            notes.append(f"isolated run of {system}: exit code {proc.returncode}")
            return
        with open(out.name) as fh:
            result = json.load(fh)
    notes.extend(note for note in result["notes"] if note not in notes)
    for key, value in result["timings"]:
        key, value = tuple(key), (tuple(value) if isinstance(value, list) else value)
        earlier = timings.get(key)
        if isinstance(earlier, tuple) and isinstance(value, tuple):
            value = (earlier[0], min(earlier[1], value[1]))
        elif isinstance(earlier, tuple):
            value = earlier
        timings[key] = value


def table_rows(args, backends, timings):
    """One row per (shape, cell, mode, fastrnn backend), with the peers' best ms beside it."""
    rows = []
    for shape_name in args.shapes:
        for cell in args.cells:
            for mode in args.modes:
                def best(system):
                    value = timings.get((shape_name, cell, mode, system))
                    return value[1] if isinstance(value, tuple) else None

                peer_ms = {p: best(p) for p in ("torch", "onnxruntime")
                           if (shape_name, cell, mode, p) in timings}
                for backend in backends:
                    value = timings.get((shape_name, cell, mode, f"fastrnn[{backend}]"))
                    row = dict(shape=shape_name, cell=cell, mode=mode, backend=backend, peers=peer_ms,
                               flops=step_flops(SHAPES[shape_name], cell, mode), first=None, ms=None)
                    if isinstance(value, tuple):
                        row["first"], row["ms"] = value
                    else:
                        row["missing"] = value or "error"
                    rows.append(row)
    return rows


def threads_scaling(args, backends, peers, notes):
    """Inference on infer_batch at 1 thread and at ``--threads`` for each fastrnn backend (and PyTorch)."""
    from runners import backend_supports, fastrnn_call, reference_state, set_threads, torch_call

    shape = SHAPES["infer_batch"]
    x, y = make_inputs(shape)
    rows = []
    for cell in args.cells:
        state = reference_state(shape, cell)
        systems = [(f"fastrnn[{b}]", lambda b=b: fastrnn_call(shape, cell, "inference", b, x, y, state))
                   for b in backends if not backend_supports(b, cell)]
        if peers["torch"]:
            systems.append(("torch", lambda: torch_call(shape, cell, "inference", x, y, state)))
        for name, make in systems:
            call = make()
            timings = {1: None, args.threads: None}
            # 1, N, 1, N, ... thread counts in turn, each one's fastest kept: a noisy spell on a shared
            # machine then slows one pass instead of deciding the speed-up (one pass measured 1.15x once).
            for _ in range(args.passes):
                for threads in (1, args.threads):
                    set_threads(threads)
                    timed = measure(f"threads {cell} {name} x{threads}", call, args, notes)
                    if timed and (timings[threads] is None or timed[1] < timings[threads]):
                        timings[threads] = timed[1]
            set_threads(args.threads)
            rows.append(dict(cell=cell, system=name, one=timings[1], many=timings[args.threads]))
            print(f"  threads {cell} {name}: {timings}", file=sys.stderr, flush=True)
    return rows


def _subprocess_json(argv, notes, env=None, label=""):
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        notes.append(f"{label}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]} ")
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peak_memory(args, backends, peers, notes):
    rows = []
    for cell in args.cells:
        systems = [("fastrnn", b) for b in backends] + ([("torch", "-")] if peers["torch"] else [])
        for system, backend in systems:
            argv = [os.path.join(HERE, "memory.py"), "--system", system, "--cell", cell,
                    "--threads", str(args.threads)] + (["--backend", backend] if system == "fastrnn" else [])
            result = _subprocess_json(argv, notes, label=f"memory {cell} {system}[{backend}]")
            if result:
                rows.append(result)
                print(f"  memory {cell} {system}[{backend}]: {result['step_peak_mib']:.1f} MiB",
                      file=sys.stderr, flush=True)
    return rows


def first_calls(args, backends, notes):
    results = {}
    for backend in backends:
        if backend != "numba":  # only Numba compiles at run time
            continue
        with tempfile.TemporaryDirectory(prefix="fastrnn-numba-cache-") as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            argv = [os.path.join(HERE, "first_call.py"), "--backend", backend, "--cells",
                    ",".join(args.cells), "--threads", str(args.threads)]
            for kind in ("cold", "cached"):
                results[(backend, kind)] = _subprocess_json(argv, notes, env=env,
                                                            label=f"first call {backend} {kind}")
    return results


# ---------------------------------------------------------------- rendering
def _ratio(peer, ours):
    return f"{peer / ours:.2f}×" if peer and ours else "—"


def script_sections(args, notes):
    """Run the SCRIPT_SECTIONS chosen in ``args.sections``; return their Markdown, each under a heading."""
    parts = []
    for name, (heading, command) in SCRIPT_SECTIONS.items():
        if name not in args.sections:
            continue
        proc = subprocess.run([sys.executable, os.path.join(HERE, command[0])] + command[1:] +
                              (["--threads", str(args.threads)] if name != "dask" else []),
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            notes.append(f"section {name}: exit code {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        parts.append((f"## {heading}\n\n" if heading else "") + proc.stdout.strip() + "\n")
    return parts


def measure_sgemm(threads, earlier=None):
    """``{thread count: (NumPy GFLOP/s, ONNX Runtime GFLOP/s or None)}`` at 1 and ``threads`` threads, each the
    faster of this measurement and ``earlier``'s: the peak is taken before and again after the main table,
    since a noisy spell during one short measurement read a Zen 5's 2-thread peak as 303 instead of 400."""
    sgemm = {}
    for t in sorted({threads, 1}):
        now = (sgemm_gflops(t), onnxruntime_sgemm_gflops(t))
        before = (earlier or {}).get(t, (None, None))
        sgemm[t] = tuple(None if a is None and b is None else max(g for g in (a, b) if g is not None)
                         for a, b in zip(now, before))
    print(f"sgemm GFLOP/s (NumPy, ONNX Runtime): {sgemm}", file=sys.stderr)
    return sgemm


def render(args, meta, sgemm, rows, scaling, memory, compile_results, cold, served, denormal_rows, notes,
           scripts=()):
    lines = ["# fastrnn vs PyTorch vs ONNX Runtime", "",
             f"- Date: {meta['date']}",
             f"- Machine: {meta['machine']}; load average (1/5/15 min) at start {meta['load_start']}, "
             f"at end {meta['load_end']}",
             f"- Threads: {args.threads} for every system; numba threading layer: {meta['threading_layer']}; "
             f"numba vectors: {meta['vectors']}",
             f"- fastrnn's C heap between calls: {meta['allocator']}; OpenMP workers between calls: {meta['waiting']}",
             f"- fastrnn's float32 GEMMs outside the time loops (projection, gradients): {meta['gemm']}",
             "- Main table: " + (("each system timed in its own process (`--isolate`)"
                                  + (f", {args.passes} passes in alternating order, each cell's fastest kept"
                                     if args.passes > 1 else "")) if args.isolate
                                 else "every system timed in this one process, one after the other"),
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
             f"- Missing peers: {', '.join(meta['missing']) or 'none'}",
             f"- Training step head/optimiser for fastrnn: {meta['head_source']}",
             f"- Command: `{meta['command']}`", ""]
    peak = {t: max(g for g in pair if g is not None) for t, pair in sgemm.items()}
    lines += ["## sgemm roofline (float32 2048×2048 matmul, same run)", "",
              "The peak is the faster of NumPy's BLAS and ONNX Runtime's MatMul (MLAS): a BLAS that does not "
              "know the CPU runs kernels narrower than it has. Each is the best of a measurement before and "
              "one after the main table.", "",
              f"| threads | NumPy ({blas_architecture() or 'BLAS'} kernels) GFLOP/s | ONNX Runtime MatMul GFLOP/s "
              "| peak used GFLOP/s |", "|---|---|---|---|"]
    lines += [f"| {t} | {numpy_g:.1f} | {'—' if ort_g is None else f'{ort_g:.1f}'} | {peak[t]:.1f} |"
              for t, (numpy_g, ort_g) in sorted(sgemm.items())] + [""]
    if rows:
        lines.append(targets.render(targets.evaluate(rows, peak[args.threads], scaling, memory, compile_results),
                                    args.threads))
        has_ort = any("onnxruntime" in r["peers"] for r in rows)
        lines += [f"## Time per call (ms: fastest call over {args.repeats} repeats after warm-up; ratio > 1: fastrnn faster)", "",
                  "| shape | cell | mode | fastrnn backend | fastrnn ms | first call ms | PyTorch ms |"
                  + (" ONNX RT ms |" if has_ort else "") + " vs PyTorch |" + (" vs ONNX RT |" if has_ort else "")
                  + f" fastrnn GFLOP/s | % of sgemm ({args.threads} thr) |",
                  "|---" * (10 + 2 * has_ort) + "|"]
        for r in rows:
            torch_ms, ort_ms = r["peers"].get("torch"), r["peers"].get("onnxruntime")
            gflops = r["flops"] / (r["ms"] * 1e-3) / 1e9 if r["ms"] else None
            ours = format_ms(r["ms"]) if r["ms"] else r.get("missing", "—")
            cells = [SHAPES[r["shape"]].name, r["cell"], r["mode"], r["backend"], ours, format_ms(r["first"]),
                     format_ms(torch_ms)] + ([format_ms(ort_ms)] if has_ort else []) + [_ratio(torch_ms, r["ms"])] \
                + ([_ratio(ort_ms, r["ms"])] if has_ort else []) \
                + [f"{gflops:.1f}" if gflops else "—",
                   f"{100 * gflops / peak[args.threads]:.0f}%" if gflops else "—"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "Shapes: " + "; ".join(f"{n} = {SHAPES[n].label()}" for n in args.shapes), ""]
    if scaling:
        lines += [f"## Threads scaling (infer_batch = {SHAPES['infer_batch'].label()}, inference)", "",
                  f"In this process; {args.passes} pass{'es' if args.passes > 1 else ''} over the thread counts in "
                  "turn, each count's fastest kept.", "",
                  f"| cell | system | 1 thread ms | {args.threads} threads ms | speed-up |", "|---|---|---|---|---|"]
        lines += [f"| {s['cell']} | {s['system']} | {format_ms(s['one'])} | {format_ms(s['many'])} | {_ratio(s['one'], s['many'])} |"
                  for s in scaling] + [""]
    if memory:
        lines += [f"## Peak memory of one training step ({MEMORY_SHAPE.label()})", "",
                  "Each measured in its own process: RSS high-water mark during the step minus RSS "
                  "just before it (after a tiny warm-up step, with the model and inputs already built; "
                  f"method: {memory[0]['method']}; see bench/memory.py).", "",
                  "| cell | system | step peak MiB | process RSS before MiB |", "|---|---|---|---|"]
        lines += [f"| {m['cell']} | {m['system'] if m['system'] == 'torch' else 'fastrnn[' + m['backend'] + ']'} | "
                  f"{m['step_peak_mib']:.1f} | {m['rss_before_mib']:.0f} |" for m in memory] + [""]
    if compile_results:
        lines += ["## First call per kernel family (fresh process, fresh NUMBA_CACHE_DIR)", "",
                  "`cold` compiles; `cached` is a second process finding the on-disk cache. "
                  "First call on later shapes shows whether compile grows with the number of shapes.", "",
                  "| backend | cache | import fastrnn s | cell | call | first call s | warm call s |",
                  "|---|---|---|---|---|---|---|"]
        for (backend, kind), result in compile_results.items():
            if not result:
                continue
            for cell, timings in result["cells"].items():
                for call, t in timings.items():
                    if call == "error":
                        lines.append(f"| {backend} | {kind} | {result['import_s']:.2f} | {cell} | error | {t} | |")
                        continue
                    lines.append(f"| {backend} | {kind} | {result['import_s']:.2f} | {cell} | {call} | "
                                 f"{t['first_s']:.3f} | {t['warm_s']:.4f} |")
        lines.append("")
    if cold:
        lines.append(cold_start.render(cold, args.threads))
    if served:
        lines.append(serve.render(served, SERVE_SECONDS, args.threads))
    if denormal_rows:
        lines.append(denormals.render(denormal_rows))
    lines += list(scripts)
    if notes:
        lines += ["## Notes (missing kernels, errors)", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)


def fresh_process_waiting_policy():
    """How OpenMP workers wait between calls in a process that loads fastrnn first, as the isolated fastrnn
    timings do (this process loaded torch, and with it torch's libgomp, before fastrnn)."""
    code = "import fastrnn.kernels as k; k.available_backends(); print(k.waiting_policy())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    return proc.stdout.strip() or f"unknown (exit code {proc.returncode})"


def _isolated_child(args):
    from runners import set_threads

    if args.only_system in ("torch", "onnxruntime"):
        import torch  # noqa: F401  (before set_threads, which only reaches an imported torch)
    set_threads(args.threads)
    notes = []
    timings = time_systems(args, [args.only_system], notes)
    with open(args.json_out, "w") as fh:
        json.dump({"timings": [[list(k), v] for k, v in timings.items()], "notes": notes}, fh)


def main(argv=None):
    args = parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in
                                    [os.path.relpath(os.path.abspath(__file__))] + list(sys.argv[1:] if argv is None else argv))
    if args.only_system:  # a child of --isolate: time one system, hand the timings back as JSON
        return _isolated_child(args)
    load_start = load_average()
    import numba

    import _training
    from fastrnn.kernels import allocator_policy, available_backends
    from runners import peer_status, set_threads

    peers = peer_status()
    missing = [f"{name} (pip install {'torch==2.13.0' if name == 'torch' else name})"
               for name, version in peers.items() if not version]
    if peers["onnxruntime"] and not peers["torch"]:
        missing.append("onnxruntime needs torch here to export the models")
    for line in missing:
        print(f"peer missing: {line}", file=sys.stderr)
    available = available_backends()
    backends = args.backends or [b for b in available if b != "reference"] or ["reference"]
    for b in list(backends):
        if b not in available:
            print(f"fastrnn backend {b!r} is not available here; skipped", file=sys.stderr)
            backends.remove(b)
    print(f"backends: {backends}; peers: {peers}", file=sys.stderr)

    notes = []
    set_threads(args.threads)
    sgemm = measure_sgemm(args.threads)
    rows = []
    if "table" in args.sections:
        systems = table_systems(backends, peers)
        timings = (time_systems_isolated if args.isolate else time_systems)(args, systems, notes)
        sgemm = measure_sgemm(args.threads, sgemm)
        rows = table_rows(args, backends, timings)
    scaling = threads_scaling(args, backends, peers, notes) if "threads" in args.sections else []
    memory = peak_memory(args, backends, peers, notes) if "memory" in args.sections else []
    compiled = first_calls(args, backends, notes) if "compile" in args.sections else {}
    cold = cold_start.measure(args.threads, backends) if "coldstart" in args.sections else []
    served = serve.measure(args.cells, seconds=SERVE_SECONDS, threads=args.threads) if "serve" in args.sections else []
    denormal_rows = denormals.measure(backends) if "denormals" in args.sections else []
    scripts = script_sections(args, notes)
    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised (no parallel kernel ran)"
    meta = dict(date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                machine=machine_description(), load_start=load_start, load_end=load_average(),
                threading_layer=layer, vectors=numba_vectors(), allocator=allocator_policy(), waiting=fresh_process_waiting_policy(),
                gemm=gemm_policy(),
                versions=versions(peers), missing=missing,
                head_source=_training.head_source(), command=command)
    text = render(args, meta, sgemm, rows, scaling, memory, compiled, cold, served, denormal_rows, notes, scripts)
    print(text)
    if args.markdown_out:
        with open(args.markdown_out, "w") as fh:
            fh.write(text + "\n")
        print(f"wrote {args.markdown_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
