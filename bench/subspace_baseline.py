"""Baseline of `cargo xtask bench subspace`: the authors' procedure for experiments 1 and 2 as
METHOD.md describes it, on the run directory's checkpoints.

    python bench/subspace_baseline.py --models DIR --threads N

Projection (their scripts/projection.py, projection_helper.py and
utils/post_processing_subspace*.py): for every fine-tune, kind, method and fraction a new Python
process loads base, aligned and the fine-tune through transformers in fp16, subtracts in fp16,
and for every 2-D tensor computes the exact SVD of A in f32 — their `torch.linalg.svd_lowrank`
call does not exist, so they always fall back to it; for `random` the SVD of a seeded Gaussian
matrix of A's shape — keeps the top k (or, for `randomk`, k random) left singular vectors,
projects T, merges in fp16 and prints the summed diagnostics. Other tensors project on the
direction of A. The merged model is not written (the authors save it for the evaluation; our
project stage writes no merge either), so this baseline does a little less than theirs.

MSO (their exp-3-update_spaces/update_spaces_functions.py): one process that, for every energy
fraction, reloads aligned, useful and harmful in fp16 and recomputes both SVDs of every tensor
(per-tensor granularity; exact when max(rows, cols) <= 10,000, else `torch.svd_lowrank` with
q = 25% of min(rows, cols) and 2 power iterations).

Prints one JSON line: the number of projection processes and of MSO energy fractions.
"""

import argparse
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM

from common import print_result, set_threads

FINETUNES = ["useful", "harmful", "contaminated"]
KINDS = ["topk", "randomk", "random"]
METHODS = ["same", "orth"]
FRACTIONS = [0.01, 0.25, 0.5, 0.75, 0.99]
ENERGY_FRACTIONS = [0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99]
SEED = 42


def load_state_dict(path):
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float16)
    state = {k: v for k, v in model.state_dict().items()}
    del model
    return state


def basis(kind, align, frac, generator):
    """k = max(1, round(f r)) left singular vectors of A (or of a random matrix) as columns."""
    k = max(1, int(round(frac * min(align.shape))))
    matrix = torch.randn(align.shape, generator=generator) if kind == "random" else align
    u, _, _ = torch.linalg.svd(matrix, full_matrices=False)
    if kind == "randomk":
        return u[:, torch.randperm(u.shape[1], generator=generator)[:k]]
    return u[:, :k]


def project(args):
    """One projection run: load the three checkpoints, project, merge, print diagnostics."""
    base, aligned, finetune = (load_state_dict(p) for p in (args.base, args.aligned, args.finetune))
    generator = torch.Generator().manual_seed(SEED)
    uu = pp = up = uv = vv = 0.0
    with torch.no_grad():
        for name, wb in base.items():
            if not torch.is_floating_point(wb):
                continue
            wa, wf = aligned[name], finetune[name]
            v = (wa - wb).to(torch.float32)
            u = (wf - wa).to(torch.float32)
            if v.ndim == 2:
                basis_k = basis(args.kind, v, args.frac, generator)
                parallel = basis_k @ (basis_k.T @ u)
            else:
                denom = torch.sum(v * v)
                parallel = (torch.sum(u * v) / denom) * v if denom else torch.zeros_like(v)
            if args.method == "same":
                merged, kept = wa + parallel.to(torch.float16), parallel
            else:
                merged, kept = wa + (u - parallel).to(torch.float16), u - parallel
            aligned[name] = merged
            uu += torch.sum(u * u).item()
            pp += torch.sum(kept * kept).item()
            up += torch.sum(u * kept).item()
            uv += torch.sum(u * v).item()
            vv += torch.sum(v * v).item()
    print(f"Energy kept ratio  : {pp / (uu + 1e-12):.4f}")
    print(f"Cosine(task,proj)  : {up / (uu**0.5 * pp**0.5 + 1e-12):.4f}")
    print(f"Cosine(task,align) : {uv / (uu**0.5 * vv**0.5 + 1e-12):.4f}")


def as_matrix(t):
    return t.unsqueeze(1) if t.ndim == 1 else t.reshape(t.shape[0], -1)


def energy_basis(matrix, energy_frac):
    rows, cols = matrix.shape
    if max(rows, cols) <= 10_000:
        u, s, _ = torch.linalg.svd(matrix, full_matrices=False)
    else:
        u, s, _ = torch.svd_lowrank(matrix, q=max(1, min(rows, cols) // 4), niter=2)
    energy = (s**2).cumsum(0)
    k = int(torch.searchsorted(energy, energy_frac * energy[-1]) + 1)
    return u[:, :k], k


def mso(args):
    """Update-space MSO per tensor at every energy fraction, reloading everything each time."""
    for energy_frac in ENERGY_FRACTIONS:
        reference, useful, harmful = (load_state_dict(p) for p in (args.aligned, args.useful, args.harmful))
        with torch.no_grad():
            for name, w0 in reference.items():
                if not torch.is_floating_point(w0):
                    continue
                qu, ku = energy_basis((as_matrix(useful[name]) - as_matrix(w0)).to(torch.float32), energy_frac)
                qh, kh = energy_basis((as_matrix(harmful[name]) - as_matrix(w0)).to(torch.float32), energy_frac)
                overlap = ((qu.T @ qh).norm() ** 2 / min(ku, kh)).item()
                print(f"{energy_frac} {name} MSO={overlap:.4f} rand={max(ku, kh) / qu.shape[0]:.4f}")


def run_worker(args):
    subprocess.run([sys.executable, __file__, *args], check=True, stdout=subprocess.DEVNULL)


def sweep(args):
    """The whole sweep: a process per projection run, then the MSO process."""
    models = lambda name: f"{args.models}/{name}"  # noqa: E731
    common = ["--threads", str(args.threads), "--base", models("base"), "--aligned", models("aligned")]
    runs = 0
    for finetune in FINETUNES:
        for kind in KINDS:
            for method in METHODS:
                for frac in FRACTIONS:
                    run_worker(["project", *common, "--finetune", models(finetune), "--kind", kind, "--method", method, "--frac", str(frac)])
                    runs += 1
    run_worker(["mso", *common, "--useful", models("useful"), "--harmful", models("harmful")])
    print_result(projection_runs=runs, mso_fractions=len(ENERGY_FRACTIONS))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="sweep", choices=["sweep", "project", "mso"])
    parser.add_argument("--models", help="directory holding base/, aligned/ and the fine-tunes (sweep)")
    parser.add_argument("--threads", type=int, required=True)
    for flag in ["--base", "--aligned", "--finetune", "--useful", "--harmful", "--kind", "--method"]:
        parser.add_argument(flag)
    parser.add_argument("--frac", type=float)
    args = parser.parse_args()
    set_threads(args.threads)
    {"sweep": sweep, "project": project, "mso": mso}[args.mode](args)


if __name__ == "__main__":
    main()
