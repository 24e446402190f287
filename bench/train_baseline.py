"""Baseline of `cargo xtask bench train`: training throughput with transformers and torch, on the
same checkpoint, sequences, batch size and thread count as `entangle-bench train`.

    python bench/train_baseline.py --model DIR --data train.json --threads N

The loop is the core of transformers' Trainer (which needs `accelerate`, not installed with the
baseline): the model's own loss on `labels = input_ids`, backward, gradient clipping to norm
1.0, AdamW (`fused=True`, Trainer's default `adamw_torch_fused` on torch >= 2.8; lr 1e-4,
betas 0.9/0.999, eps 1e-8, no weight decay), a cosine schedule with 10% warm-up, then
`zero_grad`. The batches are the data's sequences in order, `--batch-size` at a time, one
optimiser step each; the first `--warmup-steps` steps are not timed. Throughput is input tokens
per second.
"""

import argparse
import math
import time

import torch
from transformers import AutoModelForCausalLM, get_cosine_schedule_with_warmup

from common import load_json, print_result, set_threads

LR = 1e-4
WARMUP_RATIO = 0.1
MAX_GRAD_NORM = 1.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup-steps", type=int, default=2)
    args = parser.parse_args()
    set_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).train()
    sequences = torch.tensor(load_json(args.data)["ids"])
    steps = len(sequences) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, fused=True)
    schedule = get_cosine_schedule_with_warmup(optimizer, math.ceil(WARMUP_RATIO * steps), steps)
    ends = []
    for step in range(steps):
        batch = sequences[step * args.batch_size : (step + 1) * args.batch_size]
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_GRAD_NORM)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        ends.append(time.perf_counter())
    timed = steps - args.warmup_steps
    tokens_per_step = args.batch_size * sequences.shape[1]
    print_result(
        steps=steps,
        timed_steps=timed,
        tokens_per_step=tokens_per_step,
        train_tokens_per_s=timed * tokens_per_step / (ends[-1] - ends[args.warmup_steps - 1]),
        final_loss=loss.item(),
    )


if __name__ == "__main__":
    main()
