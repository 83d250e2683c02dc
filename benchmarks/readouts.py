"""Which token readout keeps what: subject identification and time direction, simulated data.

Subjects come from :func:`brainjepa_sk.datasets.make_brain_dynamics`. Each subject's scan is
cut into non-overlapping 96-frame windows (6 time patches of 16 frames).

* Subject identification: train a linear classifier on the windows of each scan's first half,
  test on the windows of its second half (chance: 1 / n_subjects).
* Time direction: each window forward or reversed in time, classified with subjects held out
  (5-fold ``GroupKFold``; chance 0.5).

* Phenotypes (``--task phenotype``): the demo's data, pretraining and cross-validation
  (``examples/demo.py``: 100 subjects x 200 frames x 100 regions; ``group`` ROC AUC and ``age``
  R2, 5 folds, every linear model and tangent projection fitted inside the training folds).

Every fitted step (the standardisation, the classifier and a tangent projection's reference
connectivity) is fitted on the training windows only: the first halves for identification,
the training folds for direction. Pearson FC, the lag-one covariance and the pooled token
readouts are computed per window, with nothing fitted across windows. The encoders are
pretrained once on all scans (no labels).

Readouts of a Brain-JEPA encoder (pretrained with the demo's settings, and random encoders of
the same size with learning rate zero): ``mean``, ``roi_std``, ``connectivity``, ``lagged``,
and ``tokens`` followed by nilearn's tangent-space connectivity. Baselines on the raw
series: tangent FC, Pearson FC and the lag-one covariance of the series. One JSON line per
(task, readout)::

    python benchmarks/readouts.py --subjects 20 --epochs 40
    python benchmarks/readouts.py --task phenotype            # 38 min on 2 shared cores
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from nilearn.connectome import ConnectivityMeasure
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainjepa_sk import BrainJEPAEmbedder, BrainJEPAPretrainer, GradientPositioner
from brainjepa_sk.datasets import make_brain_dynamics

N_FRAMES, PATCH, T_R = 96, 16, 2.0
POOLINGS = ["mean", "roi_std", "connectivity", "lagged", "tokens"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--subjects", type=int, default=20)
    p.add_argument("--timepoints", type=int, default=576, help="frames per scan (6 windows)")
    p.add_argument("--regions", type=int, default=50)
    p.add_argument("--sparsity", type=float, default=0.9,
                   help="the gradients' sparsity (GradientPositioner's, windows task); it must "
                        "keep 2 connections per region, int(regions * (1 - sparsity)) >= 2: "
                        "e.g. 0.85 for 20 regions")
    p.add_argument("--epochs", type=int, default=40, help="pretraining epochs")
    p.add_argument("--controls", type=int, default=2, help="random encoders")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phenotype-epochs", type=int, default=92,
                   help="pretraining epochs of the phenotype task (the demo's)")
    p.add_argument("--task", choices=["windows", "phenotype", "both"], default="windows",
                   help="windows: identification and direction; phenotype: the demo's")
    return p.parse_args(argv)


def windows_of(X):
    """Non-overlapping windows of every scan: (windows, subject, position in the scan)."""
    out, subject, position = [], [], []
    for i, x in enumerate(X):
        for k, start in enumerate(range(0, len(x) - N_FRAMES + 1, N_FRAMES)):
            out.append(x[start:start + N_FRAMES])
            subject.append(i)
            position.append(k)
    return out, np.asarray(subject), np.asarray(position)


def lag_covariance(windows):
    """Lag-one covariance of the raw series, every ordered pair of regions."""
    out = []
    for w in windows:
        z = (w - w.mean(0)) / w.std(0)
        out.append((z[1:].T @ z[:-1] / (len(z) - 1)).ravel())
    return np.asarray(out)


def classifier(*steps):
    """``steps`` (a tangent projection), a standardisation and a logistic regression."""
    return make_pipeline(*steps, StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))


def tangent():
    """Tangent-space connectivity; its reference is the mean of the series it is fitted on."""
    return ConnectivityMeasure(kind="tangent", vectorize=True, discard_diagonal=True)


def identification(features, subject, position, n_halves, steps=()):
    """Accuracy of telling the subject of a second-half window, trained on first halves.

    ``features``: an array, or a list of series for ``steps`` (fitted on the first halves)."""
    train = position < n_halves
    model = classifier(*steps).fit([f for f, t in zip(features, train) if t], subject[train])
    predicted = model.predict([f for f, t in zip(features, train) if not t])
    return float((predicted == subject[~train]).mean())


def direction(features, label, groups, steps=()):
    """Accuracy of telling forward from reversed windows, subjects held out (5 folds);
    ``steps`` are fitted in each training fold, as the classifier is."""
    return float(cross_val_score(classifier(*steps), features, label, cv=GroupKFold(5),
                                 groups=groups).mean())


def phenotype_task(a):
    """The demo's phenotypes from every readout, against the raw-series baselines."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
    from demo import T_R as demo_t_r
    from demo import evaluate, make_pretrainer, random_encoder, tangent_connectivity
    from demo import parse_args as demo_args

    X, y = make_brain_dynamics(n_subjects=100, n_timepoints=200, n_regions=100, t_r=demo_t_r,
                               random_state=a.seed)

    def report(readout, scores, **extra):
        print(json.dumps({"task": "phenotype", "readout": readout,
                          "group_auc": round(float(scores["group ROC AUC"].mean()), 3),
                          "age_r2": round(float(scores["age R2"].mean()), 3),
                          "seed": a.seed, **extra}), flush=True)

    report("tangent FC", evaluate(X, y, lambda: [tangent_connectivity()], seed=a.seed))
    pearson = ConnectivityMeasure(kind="correlation", vectorize=True, discard_diagonal=True)
    report("Pearson FC", evaluate(pearson.fit_transform(X), y, seed=a.seed))
    report("lag-one covariance", evaluate(lag_covariance(X), y, seed=a.seed))
    demo = demo_args(["--seed", str(a.seed), "--n-epochs", str(a.phenotype_epochs)])
    with tempfile.TemporaryDirectory() as folder:
        encoders = {"pretrained": f"{folder}/pretrained.pt"}
        pretrainer = make_pretrainer(demo).fit(X)
        pretrainer.save(encoders["pretrained"])
        for draw in range(a.controls):
            encoders[f"random {draw}"] = f"{folder}/random{draw}.pt"
            random_encoder(demo, pretrainer.gradients_, a.seed + draw).fit(X).save(
                encoders[f"random {draw}"])
        for name, path in encoders.items():
            for pooling in POOLINGS:
                features = BrainJEPAEmbedder(path, pooling=pooling).fit(X).transform(X)
                steps = (lambda: [tangent_connectivity()]) if pooling == "tokens" else list
                label = f"{name}: tokens + tangent" if pooling == "tokens" else (
                    f"{name}: {pooling}")
                report(label, evaluate(features, y, steps, seed=a.seed))


def main(argv=None):
    a = parse_args(argv)
    start = time.perf_counter()
    if a.task in ("phenotype", "both"):
        phenotype_task(a)
        if a.task == "phenotype":
            print(json.dumps({"seconds": round(time.perf_counter() - start)}))
            return
    X, _ = make_brain_dynamics(n_subjects=a.subjects, n_timepoints=a.timepoints,
                               n_regions=a.regions, t_r=T_R, random_state=a.seed)
    windows, subject, position = windows_of(X)
    n_halves = position.max() // 2 + 1
    reversed_windows = [w[::-1].copy() for w in windows]
    both = windows + reversed_windows
    label = np.r_[np.ones(len(windows)), np.zeros(len(windows))].astype(int)
    groups = np.r_[subject, subject]

    def report(task, readout, score, **extra):
        print(json.dumps({"task": task, "readout": readout, "score": round(score, 3),
                          "subjects": a.subjects, "regions": a.regions,
                          "sparsity": a.sparsity, "seed": a.seed,
                          **extra}), flush=True)

    # baselines on the raw windows
    report("identification", "tangent FC",
           identification(windows, subject, position, n_halves, [tangent()]))
    pearson = ConnectivityMeasure(kind="correlation", vectorize=True, discard_diagonal=True)
    report("identification", "Pearson FC",
           identification(pearson.fit_transform(windows), subject, position, n_halves))
    report("identification", "lag-one covariance",
           identification(lag_covariance(windows), subject, position, n_halves))
    report("direction", "tangent FC", direction(both, label, groups, [tangent()]))
    report("direction", "lag-one covariance", direction(lag_covariance(both), label, groups))

    params = dict(
        gradients=GradientPositioner(n_components=10, sparsity=a.sparsity,
                                     random_state=a.seed),
        model_size={"embed_dim": 64, "depth": 1, "num_heads": 2}, patch_size=PATCH,
        n_frames=N_FRAMES, predictor_embed_dim=64, predictor_depth=2, batch_size=16,
        patch_embed_init="xavier", final_lr=1e-3, ema_momentum=0.99, final_ema_momentum=0.99,
        t_r=T_R, window="first", normalization="robust", device="cpu", verbose=0,
    )
    encoders = {"pretrained": BrainJEPAPretrainer(**params, n_epochs=a.epochs,
                                                  warmup_epochs=a.epochs / 5,
                                                  random_state=a.seed).fit(X)}
    for draw in range(a.controls):
        encoders[f"random {draw}"] = BrainJEPAPretrainer(
            **{**params, "final_lr": 0.0}, n_epochs=1, lr=0.0, start_lr=0.0,
            random_state=a.seed + 100 + draw).fit(X)
    for name, encoder in encoders.items():
        for pooling in POOLINGS:
            encoder.set_params(pooling=pooling)
            # tokens are series: a tangent projection, fitted with the classifier, reads them
            steps = [tangent()] if pooling == "tokens" else []
            readout = "tokens + tangent" if pooling == "tokens" else pooling
            report("identification", f"{name}: {readout}",
                   identification(encoder.transform(windows), subject, position, n_halves,
                                  steps))
            report("direction", f"{name}: {readout}",
                   direction(encoder.transform(both), label, groups, steps))
    print(json.dumps({"seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
