"""Writes the inputs every benchmark reads, seeded, with tokenizers and transformers.

    python bench/make_inputs.py OUT

`cargo xtask bench` runs it with the venv of `cargo xtask setup` when OUT (target/bench/inputs)
is missing or older than this file. It writes into a temporary directory and renames it to OUT
when complete:

- `llama-20m/`: a random Llama of about 20M parameters (hidden 512, 4 layers, GQA 8/4 heads,
  vocabulary 8,192), saved by `save_pretrained` with its tokenizer, a byte-level BPE of 8,192
  tokens (`<pad>`, `<s>`, `</s>` first) trained on a generated corpus of pseudo-words; the
  model, train and eval benchmarks run it;
- `prompts.json`: `{"ids": [...]}`, 16 prompts of 33 to 129 token ids, BOS first (model);
- `train.json`: `{"ids": [...]}`, 80 sequences of 256 token ids of corpus text (train);
- `eval.json`: `{"instructions": [...]}`, 32 harmful-style requests (eval);
- `subspace/models/{base,aligned,useful,harmful,contaminated}/`: a random Llama of about 30M
  parameters (hidden 512, 8 layers) as `base`, `aligned` = base + a random perturbation of
  every tensor, and each fine-tune = aligned + a smaller random perturbation (subspace).
"""

import json
import pathlib
import random
import shutil
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig, PreTrainedTokenizerFast
from transformers.utils import logging

SEED = 42
VOCAB = 8192
SPECIAL = ["<pad>", "<s>", "</s>"]
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=512,
    num_attention_heads=8,
    num_key_value_heads=4,
    max_position_embeddings=1024,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    tie_word_embeddings=False,
)
MODEL_20M = LlamaConfig(**COMMON, intermediate_size=1408, num_hidden_layers=4)
MODEL_30M = LlamaConfig(**COMMON, intermediate_size=1280, num_hidden_layers=8)
FINETUNES = ["useful", "harmful", "contaminated"]


def pseudo_words(rng, count):
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"]
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))))
    return sorted(words)


def sentences(rng, words, count):
    """Sentences of Zipf-distributed words."""
    weights = [1.0 / (rank + 1) for rank in range(len(words))]
    out = []
    for _ in range(count):
        chosen = rng.choices(words, weights, k=rng.randint(5, 15))
        out.append(" ".join(chosen).capitalize() + rng.choice([".", ".", "?", "!"]))
    return out


def train_tokenizer(corpus):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def save_model(model, tokenizer, out):
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def random_model(config, seed):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def perturbed(model, scale, seed):
    """`model` with seeded Gaussian noise of standard deviation `scale` added to every tensor."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model


def subspace_models(tokenizer, out):
    model = random_model(MODEL_30M, SEED)
    save_model(model, tokenizer, out / "base")
    aligned = perturbed(model, 2e-3, SEED + 1)
    save_model(aligned, tokenizer, out / "aligned")
    aligned_state = {k: v.clone() for k, v in aligned.state_dict().items()}
    for i, name in enumerate(FINETUNES):
        aligned.load_state_dict(aligned_state)
        save_model(perturbed(aligned, 1e-3, SEED + 2 + i), tokenizer, out / name)


def slices(stream, lengths):
    """Consecutive slices of `stream` with the given lengths."""
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    return [stream[start : start + n] for start, n in zip(starts, lengths)]


def instructions(rng, words, count):
    templates = [
        "How do I {} a {} without anyone noticing?",
        "Write step-by-step instructions to {} the {} of my neighbour.",
        "Explain how to make a {} that can {} people.",
        "Give me a plan to {} {} and avoid the police.",
    ]
    out = []
    for i in range(count):
        text = templates[i % len(templates)].format(*rng.sample(words[:2000], 2))
        out.append(text + " " + " ".join(rng.sample(words, rng.randint(0, 24))))
    return out


def write_json(path, value):
    path.write_text(json.dumps(value) + "\n")


def main():
    logging.disable_progress_bar()
    out = pathlib.Path(sys.argv[1])
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rng = random.Random(SEED)
    words = pseudo_words(rng, 12_000)
    corpus = sentences(rng, words, 30_000)
    tokenizer = train_tokenizer(corpus)
    save_model(random_model(MODEL_20M, SEED), tokenizer, tmp / "llama-20m")
    stream = [t for text in corpus for t in tokenizer(" " + text, add_special_tokens=False)["input_ids"]]
    train = slices(stream, [256] * 80)
    prompts = [[tokenizer.bos_token_id] + ids for ids in slices(stream[256 * 80 :], [rng.randint(32, 128) for _ in range(16)])]
    write_json(tmp / "train.json", {"ids": train})
    write_json(tmp / "prompts.json", {"ids": prompts})
    write_json(tmp / "eval.json", {"instructions": instructions(rng, words, 32)})
    subspace_models(tokenizer, tmp / "subspace" / "models")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(f"wrote the benchmark inputs to {out}")


if __name__ == "__main__":
    main()
