"""Baseline of `cargo xtask bench model`: forward and greedy-generation throughput of a model
with transformers, on the same checkpoint, prompts and thread count as `entangle-bench model`.

    python bench/model_baseline.py --model DIR --prompts prompts.json --threads N

The 16 prompts (token ids) run as one left-padded batch. Forward: one pass computing the logits
of every position, timed as tokens (real, not padding) per second. Generation: greedy with the
KV cache, exactly `--new-tokens` new tokens per prompt (`min_new_tokens` keeps EOS from ending
a row early), timed as new tokens per second. Each is run once to warm up, then `--repeats`
times; the fastest run counts. Model loading is not timed.
"""

import argparse

import torch
from transformers import AutoModelForCausalLM

from common import fastest, left_padded, load_json, print_result, set_threads


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--prompts", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    set_threads(args.threads)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    pad = model.config.pad_token_id
    ids, mask = left_padded(load_json(args.prompts)["ids"], pad)
    n = args.new_tokens
    with torch.no_grad():
        forward_s, _ = fastest(args.repeats, lambda: model(input_ids=ids, attention_mask=mask, use_cache=False))
        generate = lambda: model.generate(  # noqa: E731
            input_ids=ids, attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad
        )
        generate_s, out = fastest(args.repeats, generate)
    generated = out[:, ids.shape[1] :].numel()
    print_result(
        forward_tokens=int(mask.sum()),
        forward_tokens_per_s=int(mask.sum()) / forward_s,
        generated_tokens=generated,
        generation_tokens_per_s=generated / generate_s,
    )


if __name__ == "__main__":
    main()
