"""The issue-5 target check that bench/peers.py prints (bench/targets.py): thresholds, ceilings, gaps.

Pure bookkeeping on made-up measurements; no timing is taken here.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import targets  # noqa: E402  (bench/ is not a package)


def _row(shape, cell, mode, ms, torch=None, ort=None, backend="numba", flops=1e9):
    peers = {name: value for name, value in (("torch", torch), ("onnxruntime", ort)) if value is not None}
    return dict(shape=shape, cell=cell, mode=mode, backend=backend, ms=ms, peers=peers, flops=flops, first=ms)


def _by_case(found):
    return {(t["area"], t["what"]): t for t in found}


def test_speed_thresholds_follow_the_issue():
    rows = [
        _row("small", "lstm", "inference", 1.0, torch=2.0, ort=1.4),      # 1.4x the better peer: 1.5 needed
        _row("medium", "lstm", "inference", 10.0, torch=10.1, ort=12.0),  # faster: enough off small/b1/GRU
        _row("large", "lstm", "inference", 10.0, torch=10.0, ort=11.0),   # a tie is not faster
        _row("medium", "gru", "inference", 10.0, torch=20.0, ort=15.0),   # GRU needs 1.5x: met exactly
        _row("large", "gru", "training", 5.0, torch=5.0),                  # training on large: 1.0x suffices
        _row("medium", "gru", "training", 5.0, torch=5.5),                 # medium training needs 1.2x
        _row("infer_batch", "lstm", "training", 5.0, torch=1.0),           # no training target on infer_batch
        _row("small", "lstm", "inference", 0.1, torch=2.0, ort=1.4, backend="cython"),  # not the judged backend
    ]
    found = _by_case(targets.evaluate(rows, sgemm_gflops=100.0))
    assert found[("inference", "small lstm")]["met"] is False
    assert found[("inference", "medium lstm")]["met"] is True
    assert found[("inference", "large lstm")]["met"] is False
    assert found[("inference", "medium gru")]["met"] is True
    assert found[("training", "large gru")]["met"] is True
    assert found[("training", "medium gru")]["met"] is False
    assert ("training", "infer_batch lstm") not in found
    assert "1.40× (1.00 vs ONNX RT 1.40 ms)" == found[("inference", "small lstm")]["measured"]
    assert found[("inference", "large lstm")]["measured"].startswith("1.000× ")  # on the threshold: 3 decimals
    # 1 GFLOP at 100 GFLOP/s takes 10 ms: against ONNX Runtime's 1.4 ms the ceiling is 0.14x
    assert found[("inference", "small lstm")]["ceiling"] == pytest.approx(0.14)
    # the roofline rows: 1 GFLOP in 10 ms is 100 GFLOP/s, all of the sgemm rate
    assert found[("roofline", "large lstm inference")]["met"] is True
    assert found[("roofline", "large lstm inference")]["measured"] == "100%"


def test_memory_threads_and_compile_targets():
    memory = [dict(cell="lstm", system="fastrnn", backend="numba", step_peak_mib=400.0),
              dict(cell="lstm", system="torch", backend="auto", step_peak_mib=500.0),
              dict(cell="gru", system="fastrnn", backend="numba", step_peak_mib=501.0),
              dict(cell="gru", system="torch", backend="auto", step_peak_mib=500.0)]
    scaling = [dict(cell="lstm", system="fastrnn[numba]", one=100.0, many=55.0),
               dict(cell="gru", system="fastrnn[numba]", one=100.0, many=60.0)]
    compiled = {("numba", "cold"): {"import_s": 0.1, "cells": {
        "lstm": {"small/inference": {"first_s": 9.0}, "large/inference": {"first_s": 0.2},
                 "large/training": {"first_s": 0.3}},
        "gru": {"small/inference": {"first_s": 9.0}, "large/inference": {"first_s": 4.0}}}}}
    found = _by_case(targets.evaluate([], 100.0, scaling, memory, compiled))
    assert found[("memory", "training step peak, lstm")]["met"] is True
    assert found[("memory", "training step peak, gru")]["met"] is False
    assert found[("threads", "infer_batch lstm, 1 -> 2 threads")]["met"] is True     # 1.82x
    assert found[("threads", "infer_batch gru, 1 -> 2 threads")]["met"] is False     # 1.67x
    assert found[("compile", "first call on a later shape, lstm (cold cache)")]["measured"] == "0.30 s"
    assert found[("compile", "first call on a later shape, gru (cold cache)")]["met"] is False


def test_unmeasured_targets_are_counted_apart():
    rows = [_row("small", "gru", "inference", 1.0, torch=2.0, ort=1.6)]
    found = targets.evaluate(rows, 100.0)
    assert [t["met"] for t in found if t["area"] in ("memory", "threads", "compile")] == [None] * 6
    text = targets.render(found, threads=2)
    assert "1 of 1 measured targets met (6 not measured in this run)" in text
    assert "| inference | small gru | ≥ 1.5× the better peer | 1.60× (1.00 vs ONNX RT 1.60 ms) | yes |" in text
