"""Fine-tuning against frozen features, tangent FC and training from scratch, simulated data.

Two tasks on :func:`brainjepa_sk.datasets.make_brain_dynamics` subjects:

* ``phenotype``: the demo's data and pretraining (``examples/demo.py``: 100 subjects x 200
  frames x 100 regions, TR 2 s; the same pretrained one-block model), then the demo's
  phenotypes, ``group`` (ROC AUC, stratified k-fold) and ``age`` (R2, k-fold), each model
  fitted inside each training fold.
* ``identification``: each subject's scan cut into non-overlapping 96-frame windows; every
  window is a sample labelled with its subject; train on the windows of the first half of
  each scan, test on the second half (accuracy; chance 1 / n_subjects). The pretraining sees
  all the scans, without labels.

Methods, all from the same pretrained checkpoint unless said otherwise:

* ``fine-tuning``: ``BrainJEPAClassifier`` / ``BrainJEPARegressor``, the whole encoder trained;
* ``linear probe``: the same with ``freeze_encoder=True`` (BatchNorm then linear head);
* ``embedding + linear``: ``BrainJEPAEmbedder`` (``mean`` pooling, and ``roi_std`` before the
  final norm, the demo's best readout) then ``StandardScaler`` and a linear model;
* ``tangent FC``: nilearn's tangent-space connectivity then the same linear model;
* ``from scratch``: the fine-tuning estimator started from a random encoder of the same
  architecture, gradients and preprocessing (the demo's random-encoder control), trained the
  same way: the control that shows whether pretraining helps.

One JSON line per (task, target, method) with the fold scores::

    python benchmarks/finetune.py                      # both tasks, 18 min on 2 CPU cores
    python benchmarks/finetune.py --task identification --ft-epochs 10
    python benchmarks/finetune.py --pooling roi_std --no-final-norm   # the demo's best readout
"""

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainjepa_sk import BrainJEPAClassifier, BrainJEPAEmbedder, BrainJEPARegressor
from brainjepa_sk.datasets import make_brain_dynamics

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from demo import (  # noqa: E402  (the demo's own pretraining and baselines)
    RIDGE_ALPHAS,
    T_R,
    make_pretrainer,
    random_encoder,
    tangent_connectivity,
)
from demo import parse_args as demo_args  # noqa: E402

WINDOW = 96
EMBEDDINGS = {"embedding (mean) + linear": dict(pooling="mean"),
              "embedding (roi_std, before final norm) + linear": dict(pooling="roi_std",
                                                                      final_norm=False)}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", choices=["phenotype", "identification", "both"], default="both")
    p.add_argument("--subjects", type=int, default=100, help="phenotype task")
    p.add_argument("--id-subjects", type=int, default=20, help="identification task")
    p.add_argument("--id-timepoints", type=int, default=576, help="frames per scan (6 windows)")
    p.add_argument("--epochs", type=int, default=92, help="pretraining epochs (the demo's)")
    p.add_argument("--ft-epochs", type=int, default=20, help="fine-tuning epochs")
    p.add_argument("--ft-lr", type=float, default=1e-3, help="fine-tuning peak learning rate")
    p.add_argument("--pooling", default="mean",
                   help="pooling of the fine-tuned and probed models (the research head: mean)")
    p.add_argument("--no-final-norm", action="store_true",
                   help="pool the fine-tuned models' tokens before the final LayerNorm")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def fine_tuner(kind, weights, args, **settings):
    """The fine-tuning estimator of ``kind`` ("classifier" or "regressor") from ``weights``."""
    estimator = BrainJEPAClassifier if kind == "classifier" else BrainJEPARegressor
    return estimator(weights, lr=args.ft_lr, max_epochs=args.ft_epochs, warmup_epochs=2,
                     batch_size=16, pooling=args.pooling, final_norm=not args.no_final_norm,
                     verbose=0, random_state=args.seed, **settings)


def linear(kind, *steps):
    model = (LogisticRegression(max_iter=5000) if kind == "classifier"
             else RidgeCV(alphas=RIDGE_ALPHAS))
    return make_pipeline(*steps, StandardScaler(), model)


def methods(kind, pretrained, scratch, args):
    """name -> function building a fresh model of that method."""
    out = {
        "fine-tuning": lambda: fine_tuner(kind, pretrained, args),
        "linear probe": lambda: fine_tuner(kind, pretrained, args, freeze_encoder=True),
        "from scratch": lambda: fine_tuner(kind, scratch, args),
        "tangent FC + linear": lambda: linear(kind, tangent_connectivity()),
    }
    for name, settings in EMBEDDINGS.items():
        out[name] = lambda settings=settings: linear(kind, BrainJEPAEmbedder(pretrained,
                                                                             **settings))
    return out


def score(kind, model, X_test, y_test):
    if kind == "regressor":
        return float(model.score(X_test, y_test))
    if len(np.unique(y_test)) == 2 and not isinstance(y_test[0], str):
        return float(roc_auc_score(y_test, model.predict_proba(X_test)[:, 1]))
    return float(model.score(X_test, y_test))


def report(args, **fields):
    print(json.dumps({**fields, "seed": args.seed, "ft_epochs": args.ft_epochs,
                      "ft_lr": args.ft_lr, "ft_pooling": args.pooling,
                      "ft_final_norm": not args.no_final_norm, "machine": platform.processor() or platform.machine(),
                      "threads": torch.get_num_threads(), "torch": torch.__version__}),
          flush=True)


def checkpoints(X, args, folder):
    """Pretrain with the demo's settings; save it and a random encoder of the same design."""
    demo = demo_args(["--seed", str(args.seed), "--n-epochs", str(args.epochs)])
    t0 = time.perf_counter()
    pretrainer = make_pretrainer(demo).fit(X)
    seconds = time.perf_counter() - t0
    pretrained, scratch = f"{folder}/pretrained.pt", f"{folder}/random.pt"
    pretrainer.save(pretrained)
    random_encoder(demo, pretrainer.gradients_, args.seed).fit(X).save(scratch)
    return pretrained, scratch, seconds


def phenotype_task(args, folder):
    X, y = make_brain_dynamics(n_subjects=args.subjects, n_timepoints=200, n_regions=100,
                               t_r=T_R, random_state=args.seed)
    pretrained, scratch, seconds = checkpoints(X, args, folder)
    report(args, task="phenotype", step="pretraining", seconds=round(seconds, 1))
    X = np.stack(X)
    for target, kind, cv in [
        ("group", "classifier", StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)),
        ("age", "regressor", KFold(args.folds, shuffle=True, random_state=args.seed)),
    ]:
        labels = y[target].to_numpy()
        for name, build in methods(kind, pretrained, scratch, args).items():
            t0, scores = time.perf_counter(), []
            for train, test in cv.split(X, labels):
                model = build().fit(X[train], labels[train])
                scores.append(score(kind, model, X[test], labels[test]))
            report(args, task="phenotype", target=target,
                   metric="ROC AUC" if kind == "classifier" else "R2", method=name,
                   mean=round(float(np.mean(scores)), 3), folds=np.round(scores, 3).tolist(),
                   seconds=round(time.perf_counter() - t0, 1))


def identification_task(args, folder):
    X, _ = make_brain_dynamics(n_subjects=args.id_subjects, n_timepoints=args.id_timepoints,
                               n_regions=100, t_r=T_R, random_state=args.seed)
    pretrained, scratch, seconds = checkpoints(X, args, folder)
    report(args, task="identification", step="pretraining", seconds=round(seconds, 1))
    windows, subject, position = [], [], []
    for i, x in enumerate(X):
        for k, start in enumerate(range(0, len(x) - WINDOW + 1, WINDOW)):
            windows.append(x[start:start + WINDOW])
            subject.append(f"subject{i:02d}")
            position.append(k)
    windows, subject, position = np.stack(windows), np.asarray(subject), np.asarray(position)
    train = position < (position.max() + 1) // 2
    for name, build in methods("classifier", pretrained, scratch, args).items():
        t0 = time.perf_counter()
        model = build().fit(windows[train], subject[train])
        accuracy = float(model.score(windows[~train], subject[~train]))
        report(args, task="identification", metric="accuracy", method=name,
               mean=round(accuracy, 3), chance=round(1 / args.id_subjects, 3),
               seconds=round(time.perf_counter() - t0, 1))


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        if args.task in ("phenotype", "both"):
            phenotype_task(args, folder)
        if args.task in ("identification", "both"):
            identification_task(args, folder)
    report(args, step="total", seconds=round(time.perf_counter() - start))


if __name__ == "__main__":
    main()
