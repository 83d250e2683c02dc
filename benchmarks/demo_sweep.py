"""Does pretraining beat a random encoder on the demo data, and under which settings?

A search over pretraining settings and token readouts for ``examples/demo.py``, always against
the random-encoder control (the same initialisation, never updated). Every job pretrains one
model, embeds every subject with its target encoder and cross-validates a logistic regression
(group, ROC AUC) and a ridge regression (age, R2) on several readouts of the same tokens.

Two steps, so that the search can run where brainspace / nilearn are not installed (a GPU box)::

    python benchmarks/demo_sweep.py make-data --out sweep_data.npz          # needs brainspace
    python benchmarks/demo_sweep.py run --data sweep_data.npz --out results.jsonl \
        --workers 8 --device cuda

``run`` prints one JSON line per job (settings, losses, scores per readout) and a summary table.
"""

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

import numpy as np

N_FOLDS = 5
RIDGE_ALPHAS = np.logspace(-3, 5, 17)
READOUTS = ("mean", "roi", "roi_std", "roi_meanstd", "meanstd", "roi_std_subject")


def make_data(args):
    from brainjepa_sk import GradientPositioner
    from brainjepa_sk.datasets import make_brain_dynamics

    arrays = {}
    for seed in args.seeds:
        X, y = make_brain_dynamics(n_subjects=args.n_subjects, n_timepoints=args.n_timepoints,
                                   n_regions=args.n_regions, t_r=2.0, random_state=seed)
        gradients = GradientPositioner(n_components=30, random_state=seed).fit(X).gradients_
        arrays[f"X{seed}"] = np.stack(X).astype(np.float32)
        arrays[f"group{seed}"] = y["group"].to_numpy()
        arrays[f"age{seed}"] = y["age"].to_numpy()
        arrays[f"gradients{seed}"] = gradients
    np.savez_compressed(args.out, seeds=np.array(args.seeds), **arrays)
    print("wrote", args.out)


def base_params(device):
    """The demo's pretrainer settings (examples/demo.py), gradients given as an array."""
    return dict(
        model_size={"embed_dim": 64, "depth": 2, "num_heads": 4},
        patch_size=16, n_frames=96, predictor_embed_dim=64, predictor_depth=2, n_epochs=15,
        batch_size=16, t_r=2.0, window="sliding", normalization="robust", device=device,
        precision="fp32", verbose=0,
    )


def jobs(plan="wide"):
    """(name, overrides, patch_init_scale, is_random_control)."""
    out = []
    if plan == "focus":
        s16 = {"stride": 16}
        out += [("random", {}, 1.0, True), ("random", {}, 4.0, True), ("ep15", {}, 1.0, False),
                ("random", {}, 12.5, True), ("ep15_stride16", s16, 12.5, False),
                ("ep15_stride16", s16, 1.0, False), ("ep15_stride16", s16, 4.0, False),
                ("ep15_stride16_lr3e-4", {**s16, "lr": 3e-4}, 1.0, False),
                ("ep30", {"n_epochs": 30}, 1.0, False), ("ep60", {"n_epochs": 60}, 1.0, False)]
    else:
        for scale in (1.0, 4.0, 12.5, 40.0):
            out.append(("random", {}, scale, True))
            out.append(("ep15", {}, scale, False))
            out.append(("ep60", {"n_epochs": 60}, scale, False))
        for scale in (1.0, 12.5):
            out.append(("ep60_lr3e-4", {"n_epochs": 60, "lr": 3e-4}, scale, False))
            out.append(("ep60_ema0.99", {"n_epochs": 60, "ema_momentum": 0.99}, scale, False))
            out.append(("ep15_stride16", {"stride": 16}, scale, False))
            out.append(("rz_random", {"normalization": "roi_zscore"}, scale, True))
            out.append(("rz_ep60", {"normalization": "roi_zscore", "n_epochs": 60}, scale, False))
        wide = {"model_size": {"embed_dim": 128, "depth": 4, "num_heads": 4},
                "predictor_embed_dim": 64}
        for scale in (1.0, 12.5):
            out.append(("wide_random", wide, scale, True))
            out.append(("wide_ep30", {**wide, "n_epochs": 30}, scale, False))
    # longest first, so that the pool ends together
    return sorted(out, key=lambda job: -job[1].get("n_epochs", 15) * (3 if "stride" in job[1] else 1))


def readouts(tokens, n_regions):
    """Readouts of target-encoder tokens ``(n_windows, n_regions * n_patches, dim)``."""
    w, _, dim = tokens.shape
    grid = tokens.reshape(w, n_regions, -1, dim)
    roi_mean, roi_std = grid.mean(2), grid.std(2)
    return {
        "mean": tokens.mean(1),
        "roi": roi_mean.reshape(w, -1),
        "roi_std": roi_std.reshape(w, -1),
        "roi_meanstd": np.concatenate([roi_mean.reshape(w, -1), roi_std.reshape(w, -1)], 1),
        "meanstd": np.concatenate([tokens.mean(1), tokens.std(1)], 1),
    }


def evaluate(features, group, age, seed=0):
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    auc = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), features, group,
        cv=StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed), scoring="roc_auc")
    r2 = cross_val_score(
        make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)), features, age,
        cv=KFold(N_FOLDS, shuffle=True, random_state=seed), scoring="r2")
    return round(float(auc.mean()), 3), round(float(r2.mean()), 3)


def run_job(data_path, seed, name, overrides, scale, is_random, device):
    import torch

    torch.set_num_threads(1)
    from brainjepa_sk import BrainJEPAPretrainer
    from brainjepa_sk.train import Callback

    class ScalePatchEmbedding(Callback):
        """Exploration only: the patch embedding's initial weights x scale (before any step)."""

        def on_train_begin(self, loop):
            with torch.no_grad():
                for encoder in (loop.model.encoder, loop.model.target_encoder):
                    encoder.patch_embed.proj.weight.mul_(scale)

    data = np.load(data_path)
    X = list(data[f"X{seed}"])
    group, age = data[f"group{seed}"], data[f"age{seed}"]
    params = {**base_params(device), **overrides, "gradients": data[f"gradients{seed}"],
              "random_state": seed, "callbacks": [ScalePatchEmbedding()]}
    if is_random:
        params.update(n_epochs=1, lr=0.0, start_lr=0.0, final_lr=0.0)
    start = time.perf_counter()
    model = BrainJEPAPretrainer(**params).fit(X)
    fit_s = time.perf_counter() - start
    windows, subject_index = model.preprocessor_.transform(X)
    encoder = model.model_.target_encoder.to(device).eval()
    with torch.inference_mode():
        tokens = torch.cat([
            encoder(torch.from_numpy(windows[i:i + 64]).to(device)).float().cpu()
            for i in range(0, len(windows), 64)
        ]).numpy()
    result = {"seed": seed, "name": name, "scale": scale, "random": is_random,
              "fit_s": round(fit_s, 1),
              "loss_first": round(model.history_[0]["loss"], 4),
              "loss_last": round(model.history_[-1]["loss"], 4),
              "target_std": round(model.history_[-1]["target_std"], 4)}
    n_subjects = len(X)
    for readout, values in readouts(tokens, X[0].shape[1]).items():
        sums = np.zeros((n_subjects, values.shape[1]))
        np.add.at(sums, subject_index, values)
        per_subject = sums / np.bincount(subject_index)[:, None]
        result[readout] = evaluate(per_subject, group, age, seed)
    # std over all of a subject's time patches (all windows), per region
    grid = tokens.reshape(len(tokens), X[0].shape[1], -1, tokens.shape[-1])
    per_subject = np.stack([
        grid[subject_index == s].transpose(1, 0, 2, 3).reshape(grid.shape[1], -1, grid.shape[-1])
        .std(1).ravel() for s in range(n_subjects)])
    result["roi_std_subject"] = evaluate(per_subject, group, age, seed)
    return result


def summarize(results):
    print(f"\n{'job':<18}{'scale':>6}" + "".join(f"{r:>16}" for r in READOUTS))
    keys = sorted({(r["name"], r["scale"]) for r in results}, key=lambda k: (k[1], k[0]))
    for name, scale in keys:
        rows = [r for r in results if r["name"] == name and r["scale"] == scale]
        cells = ""
        for readout in READOUTS:
            auc = np.mean([r[readout][0] for r in rows])
            r2 = np.mean([r[readout][1] for r in rows])
            cells += f"{auc:>9.3f}/{r2:>6.3f}"
        print(f"{name:<18}{scale:>6}{cells}   (mean of {len(rows)} seeds: AUC/R2)")


def run(args):
    data = np.load(args.data)
    seeds = [int(s) for s in data["seeds"]]
    todo = [(s, *job) for s in seeds for job in jobs(args.plan)]
    if args.limit:
        todo = todo[: args.limit]
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # inherited by the (spawned) workers: no BLAS oversubscription
    results = []
    # a fresh worker per job where Python allows it (3.11+); on 3.10 the workers are reused
    fresh = {"max_tasks_per_child": 1} if sys.version_info >= (3, 11) else {}
    with open(args.out, "w") as sink, ProcessPoolExecutor(
        args.workers, mp_context=multiprocessing.get_context("spawn"), **fresh
    ) as pool:
        futures = [pool.submit(run_job, args.data, s, n, o, sc, rnd, args.device)
                   for s, n, o, sc, rnd in todo]
        for future in as_completed(futures):
            try:
                result = future.result()
            except Exception as error:  # keep the other jobs' results
                print("job failed:", repr(error), flush=True)
                continue
            results.append(result)
            sink.write(json.dumps(result) + "\n")
            sink.flush()
            print(json.dumps(result), flush=True)
    summarize(results)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make-data")
    make.add_argument("--out", required=True)
    make.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    make.add_argument("--n-subjects", type=int, default=100)
    make.add_argument("--n-timepoints", type=int, default=200)
    make.add_argument("--n-regions", type=int, default=100)
    go = sub.add_parser("run")
    go.add_argument("--data", required=True)
    go.add_argument("--out", required=True)
    go.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    go.add_argument("--device", default="cpu")
    go.add_argument("--plan", default="wide", choices=["wide", "focus"])
    go.add_argument("--limit", type=int, default=0, help="run only the first N jobs")
    go.add_argument("--summary-only", action="store_true")
    args = parser.parse_args()
    if args.command == "make-data":
        make_data(args)
    elif args.summary_only:
        summarize([json.loads(line) for line in open(args.out)])
    else:
        run(args)


if __name__ == "__main__":
    sys.exit(main())
