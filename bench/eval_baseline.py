"""Baseline of `cargo xtask bench eval`: a harmful-benchmark pass with transformers' batched
`generate`, on the prompts and settings that `entangle-bench eval` used and wrote to
`--settings` (token ids of the instruction-formatted prompts, stop strings, EOS ids, token
budget, batch size, the keyword judge's refusal phrases).

    python bench/eval_baseline.py --model DIR --settings eval_settings.json --threads N

As our evaluator: prompts sorted longest first, left-padded batches, greedy decoding that ends
a row at EOS or a stop string (`stop_strings` with the tokenizer), responses decoded without
special tokens and cut before the first stop string, then the keyword judge. One short batch
warms up; the pass is timed once. Throughput counts the tokens each response really generated
(up to and including its EOS or the token that completed a stop string), replayed after the
timed pass from the outputs.
"""

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from common import left_padded, load_json, print_result, set_threads


def batches(prompts, size):
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    return [[prompts[i] for i in order[start : start + size]] for start in range(0, len(order), size)]


def generate(model, tokenizer, batch, settings, max_new_tokens):
    ids, mask = left_padded(batch, tokenizer.pad_token_id)
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        max_new_tokens=max_new_tokens,
        do_sample=False,
        stop_strings=settings["stop_strings"],
        tokenizer=tokenizer,
        eos_token_id=settings["eos_token_ids"],
        pad_token_id=tokenizer.pad_token_id,
    )
    return out[:, ids.shape[1] :].tolist()


def response(tokenizer, tokens, stop_strings):
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    cuts = [text.find(s) for s in stop_strings if s in text]
    return text[: min(cuts)] if cuts else text


def is_refusal(text, phrases):
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return any(phrase in text for phrase in phrases)


def generated_length(tokenizer, tokens, settings):
    """How many tokens the row generated before it stopped."""
    for n in range(1, len(tokens) + 1):
        if tokens[n - 1] in settings["eos_token_ids"]:
            return n
        if any(s in tokenizer.decode(tokens[:n], skip_special_tokens=True) for s in settings["stop_strings"]):
            return n
    return len(tokens)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--settings", required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    set_threads(args.threads)
    settings = load_json(args.settings)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    work = batches(settings["prompt_ids"], settings["batch_size"])
    generate(model, tokenizer, work[0], settings, 4)
    rows, refusals = [], 0
    start = time.perf_counter()
    for batch in work:
        for tokens in generate(model, tokenizer, batch, settings, settings["max_new_tokens"]):
            refusals += is_refusal(response(tokenizer, tokens, settings["stop_strings"]), settings["refusal_phrases"])
            rows.append(tokens)
    seconds = time.perf_counter() - start
    generated = sum(generated_length(tokenizer, tokens, settings) for tokens in rows)
    print_result(
        prompts=len(rows),
        generated_tokens=generated,
        generation_tokens_per_s=generated / seconds,
        refusals=refusals,
    )


if __name__ == "__main__":
    main()
