"""Regenerate the compact files in ``fastrnn/datasets/data`` from the raw data sets.

Run from the repository root: ``python -m fastrnn.datasets._convert [RAW_DIR]`` (default
``../shared/data``). The loaders only ever read the compact files; this script is how they were made.
"""
import gzip
import os
import sys

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
UCR_SETS = ("ItalyPowerDemand", "GunPoint", "BasicMotions", "JapaneseVowels")
PLAYS = ("hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar", "tempest",
         "midsummer_nights_dream")


def parse_ts(path):
    """Parse a UCR/UEA ``.ts`` file: returns (list of (T_i, channels) float arrays, labels)."""
    cases, labels, in_data = [], [], False
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            *channels, label = line.split(":")
            series = [np.array([float(v) if v not in ("?", "NaN") else np.nan for v in ch.split(",")])
                      for ch in channels]
            if len({len(s) for s in series}) != 1:
                raise ValueError(f"{path}: channels of one case have different lengths")
            cases.append(np.stack(series, axis=1))
            labels.append(label.strip())
    return cases, np.array(labels)


def convert_ucr(raw, name):
    arrays = {}
    for split in ("train", "test"):
        cases, labels = parse_ts(os.path.join(raw, "classification", f"{name}_{split.upper()}.ts"))
        arrays[f"{split}_values"] = np.concatenate(cases)
        arrays[f"{split}_lengths"] = np.array([len(c) for c in cases], dtype=np.int32)
        arrays[f"{split}_labels"] = labels
    np.savez_compressed(os.path.join(HERE, f"{name}.npz"), **arrays)


def convert_series(raw, name, date_column_format):
    rows = np.genfromtxt(os.path.join(raw, "forecasting", f"{name}.csv"), delimiter=",", dtype=str,
                         skip_header=1)
    dates = np.array([d.strip('"') for d in rows[:, 0]])
    values = np.array([float(v.strip('"')) if v.strip('"') else np.nan for v in rows[:, 1]])
    np.savez_compressed(os.path.join(HERE, f"{name}.npz"), dates=dates.astype(date_column_format), values=values)


def convert_text(raw, play):
    with open(os.path.join(raw, "text", f"{play}_gut.txt"), "rb") as fh:
        text = fh.read()
    with gzip.GzipFile(os.path.join(HERE, f"{play}.txt.gz"), "wb", compresslevel=9, mtime=0) as fh:
        fh.write(text)


def main(raw):
    os.makedirs(HERE, exist_ok=True)
    for name in UCR_SETS:
        convert_ucr(raw, name)
    for name in ("airline", "sunspots", "co2"):
        convert_series(raw, name, "U10")
    for play in PLAYS:
        convert_text(raw, play)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join("..", "shared", "data"))
