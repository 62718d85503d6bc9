"""Issue 5's performance targets, checked against one peers.py run (the Numba backend is the one judged).

:func:`evaluate` turns the run's measurements into one row per target: what is required, what was
measured, whether it is met (``None``: not measured in this run), and for the speed targets the
*sgemm ceiling*: the ratio fastrnn would reach if every FLOP of the call ran at the 2-thread sgemm
rate measured in the same run, with no time for the gate pass. A target above its ceiling cannot be
met by faster kernels alone. At B=1 the bound is not FLOPs but reading every weight from cache at
each step, which the ceiling does not show.
"""
from shapes import CELLS
from timing import format_ms

JUDGED_BACKEND = "numba"
PEER_NAMES = {"torch": "PyTorch", "onnxruntime": "ONNX RT"}
# Inference: ratio to the better of PyTorch and ONNX Runtime. "faster" everywhere, 1.5x on these.
INFERENCE_SHAPES_AT_1_5 = ("small", "latency_b1")
# Training step: ratio to PyTorch.
TRAINING_MIN_RATIO = {"small": 1.5, "latency_b1": 1.5, "medium": 1.2, "large": 1.0}
ROOFLINE_SHAPE, ROOFLINE_MIN_SHARE = "large", 0.80
THREADS_SHAPE, THREADS_MIN_SPEEDUP = "infer_batch", 1.7
# Shapes first_call.py runs after the first one of the same kernel family: no compile expected there.
COMPILE_LATER_SHAPES, COMPILE_LATER_MAX_S = ("large",), 1.0


def inference_min_ratio(shape_name, cell):
    """``(ratio, strict)``: fastrnn must be ``ratio`` times as fast as the better peer (``strict``: faster)."""
    if shape_name in INFERENCE_SHAPES_AT_1_5 or cell == "gru":
        return 1.5, False
    return 1.0, True


def _met(value, minimum, strict=False):
    if value is None:
        return None
    return value > minimum if strict else value >= minimum


def _ratio_text(ratio, minimum):
    """``1.23×``; three decimals where two would round onto the threshold and hide which side it is on."""
    return f"{ratio:.3f}×" if round(ratio, 2) == minimum else f"{ratio:.2f}×"


def _target(area, what, required, measured, met, ceiling=None):
    return dict(area=area, what=what, required=required, measured=measured, met=met, ceiling=ceiling)


def _speed_targets(rows, sgemm_gflops):
    targets = []
    for row in rows:
        if row["backend"] != JUDGED_BACKEND:
            continue
        shape_name, cell, mode = row["shape"], row["cell"], row["mode"]
        if mode == "inference":
            peers = {name: ms for name, ms in row["peers"].items() if ms}
            minimum, strict = inference_min_ratio(shape_name, cell)
            against = "the better peer"
        elif shape_name in TRAINING_MIN_RATIO:
            peers = {name: ms for name, ms in row["peers"].items() if name == "torch" and ms}
            minimum, strict = TRAINING_MIN_RATIO[shape_name], False
            against = "PyTorch"
        else:
            continue
        peer_name, peer_ms = min(peers.items(), key=lambda item: item[1]) if peers else (None, None)
        ratio = peer_ms / row["ms"] if peer_ms and row["ms"] else None
        floor_ms = row["flops"] / (sgemm_gflops * 1e9) * 1e3 if sgemm_gflops else None
        ceiling = peer_ms / floor_ms if peer_ms and floor_ms else None
        measured = (f"{_ratio_text(ratio, minimum)} ({format_ms(row['ms'])} vs {PEER_NAMES[peer_name]} "
                    f"{format_ms(peer_ms)} ms)" if ratio else "not measured")
        required = (f"> 1× {against}" if strict else f"≥ {minimum:g}× {against}")
        targets.append(_target(f"{mode}", f"{shape_name} {cell}", required, measured,
                               _met(ratio, minimum, strict), ceiling))
    return targets


def _roofline_targets(rows, sgemm_gflops):
    targets = []
    for row in rows:
        if row["backend"] != JUDGED_BACKEND or row["shape"] != ROOFLINE_SHAPE:
            continue
        share = row["flops"] / (row["ms"] * 1e-3) / 1e9 / sgemm_gflops if row["ms"] and sgemm_gflops else None
        targets.append(_target("roofline", f"{row['shape']} {row['cell']} {row['mode']}",
                               f"≥ {ROOFLINE_MIN_SHARE:.0%} of sgemm",
                               f"{share:.0%}" if share is not None else "not measured",
                               _met(share, ROOFLINE_MIN_SHARE)))
    return targets


def _memory_targets(memory):
    ours_by_cell = {m["cell"]: m["step_peak_mib"] for m in memory
                    if m["system"] == "fastrnn" and m["backend"] == JUDGED_BACKEND}
    torch_by_cell = {m["cell"]: m["step_peak_mib"] for m in memory if m["system"] == "torch"}
    targets = []
    for cell in CELLS:
        ours, torch_peak = ours_by_cell.get(cell), torch_by_cell.get(cell)
        measured = (f"{ours:.0f} vs PyTorch {torch_peak:.0f} MiB" if ours is not None and torch_peak is not None
                    else "not measured")
        met = None if ours is None or torch_peak is None else ours <= torch_peak
        targets.append(_target("memory", f"training step peak, {cell}", "≤ PyTorch", measured, met))
    return targets


def _threads_targets(scaling):
    targets = []
    for cell in CELLS:
        found = [s for s in scaling if s["cell"] == cell and s["system"] == f"fastrnn[{JUDGED_BACKEND}]"]
        speedup = found[0]["one"] / found[0]["many"] if found and found[0]["one"] and found[0]["many"] else None
        targets.append(_target("threads", f"{THREADS_SHAPE} {cell}, 1 -> 2 threads",
                               f"≥ {THREADS_MIN_SPEEDUP:g}×",
                               f"{speedup:.2f}×" if speedup else "not measured", _met(speedup, THREADS_MIN_SPEEDUP)))
    return targets


def _compile_targets(compile_results):
    cold = (compile_results or {}).get((JUDGED_BACKEND, "cold")) or {}
    targets = []
    for cell in CELLS:
        calls = cold.get("cells", {}).get(cell, {})
        later = [t["first_s"] for call, t in calls.items()
                 if call.split("/")[0] in COMPILE_LATER_SHAPES and isinstance(t, dict)]
        worst = max(later) if later else None
        targets.append(_target("compile", f"first call on a later shape, {cell} (cold cache)",
                               f"≤ {COMPILE_LATER_MAX_S:g} s (no new compile)",
                               f"{worst:.2f} s" if worst is not None else "not measured",
                               None if worst is None else worst <= COMPILE_LATER_MAX_S))
    return targets


def evaluate(rows, sgemm_gflops, scaling=(), memory=(), compile_results=None):
    """Every target of issue 5 as a dict (area, what, required, measured, met, ceiling).

    rows: peers.table_rows output; sgemm_gflops: the run's sgemm rate at the benchmark's thread count;
    scaling, memory, compile_results: the threads, memory and compile sections' results.
    """
    return (_speed_targets(rows, sgemm_gflops) + _roofline_targets(rows, sgemm_gflops)
            + _memory_targets(memory) + _threads_targets(scaling) + _compile_targets(compile_results))


def render(targets, threads):
    """Markdown: a count of the targets met, then the table."""
    measured = [t for t in targets if t["met"] is not None]
    met = sum(t["met"] for t in measured)
    lines = [f"## Issue 5 targets ({JUDGED_BACKEND} backend, this run)", "",
             f"{met} of {len(measured)} measured targets met"
             + (f" ({len(targets) - len(measured)} not measured in this run)" if len(measured) < len(targets) else "")
             + f". Ceiling: the ratio at {threads}-thread sgemm speed for every FLOP (see bench/targets.py).", "",
             "| area | case | required | measured | met | sgemm ceiling |", "|---|---|---|---|---|---|"]
    for t in targets:
        mark = "—" if t["met"] is None else ("yes" if t["met"] else "**no**")
        ceiling = f"{t['ceiling']:.2f}×" if t["ceiling"] else ""
        lines.append(f"| {t['area']} | {t['what']} | {t['required']} | {t['measured']} | {mark} | {ceiling} |")
    return "\n".join(lines) + "\n"

