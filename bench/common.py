"""Helpers shared by the baselines of `cargo xtask bench`: thread count, inputs, timing and the
one JSON line each baseline prints."""

import json
import time

import torch


def set_threads(threads):
    torch.set_num_threads(threads)


def load_json(path):
    with open(path) as f:
        return json.load(f)


def left_padded(sequences, pad_id):
    """Token id lists left-padded to the longest: (input_ids, attention_mask)."""
    length = max(len(s) for s in sequences)
    ids = torch.tensor([[pad_id] * (length - len(s)) + s for s in sequences])
    mask = torch.tensor([[0] * (length - len(s)) + [1] * len(s) for s in sequences])
    return ids, mask


def fastest(repeats, work):
    """Runs `work` once to warm up, then `repeats` times; the fastest time in seconds and the
    last result."""
    result = work()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - start)
    return best, result


def print_result(**fields):
    print(json.dumps(fields), flush=True)
