"""How do frozen Brain-JEPA features change during pretraining, against random encoders?

Pretrains the demo's tiny model (``examples/demo.py``) on the demo data with a hand-written
``PretrainLoop`` (the loop ``BrainJEPAPretrainer`` runs) and, through a callback, at a few
points of the run embeds every subject with the target encoder and cross-validates linear
models for group (ROC AUC) and age (R2), with 5-fold cross-validation repeated 3 times (less
split noise than the demo's single 5-fold split). Readouts: ``roi_std`` pooling after the
encoder's final LayerNorm (``ln``) and before it (``noln``), and ``mean`` pooling. With
``--controls N`` it first scores N random encoders (other initialisation draws); the step-0
line is the pretraining's own starting point, a random encoder too.

One JSON line per evaluation, for example (the demo's settings)::

    python benchmarks/pretraining_probe.py --seed 0 --controls 3 --depth 1 --heads 2 \\
        --epochs 92 --warmup 20 --final-lr 1e-3 --final-ema 0.99

About 4 minutes on 2 CPU cores (2300 steps at ~0.08 s).
"""

import argparse
import json
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import RepeatedKFold, RepeatedStratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainjepa_sk import GradientPositioner
from brainjepa_sk._base import average_by_subject
from brainjepa_sk.datasets import make_brain_dynamics
from brainjepa_sk.nn import BrainJEPA
from brainjepa_sk.nn.masking import SpatiotemporalMaskSampler
from brainjepa_sk.preprocessing import Preprocessor
from brainjepa_sk.train import (
    Callback,
    PretrainLoop,
    PretrainSchedule,
    ShuffleSampler,
    WindowDataset,
    window_loader,
)

RIDGE_ALPHAS = np.logspace(-3, 5, 17)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0, help="data seed (the demo's --seed)")
    p.add_argument("--init-seed", type=int, default=0, help="model, masks and batch order")
    p.add_argument("--controls", type=int, default=0, help="random encoders scored first")
    p.add_argument("--epochs", type=int, default=52)
    p.add_argument("--warmup", type=float, default=None, help="warm-up epochs")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--final-lr", type=float, default=1e-6)
    p.add_argument("--ema", type=float, default=0.99)
    p.add_argument("--final-ema", type=float, default=1.0)
    p.add_argument("--init", default="xavier", help="patch_embed_init")
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--predictor-depth", type=int, default=2)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--n-frames", type=int, default=96, help="frames per window (stride: half)")
    p.add_argument("--evals", type=int, default=4, help="evaluations during the run")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pretrain-subjects", type=int, default=100,
                   help="subjects simulated and pretrained on; the first 100 are scored")
    return p.parse_args()


def scores(features, group, age):
    auc = cross_val_score(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)), features, group,
        cv=RepeatedStratifiedKFold(n_splits=5, n_repeats=3, random_state=0), scoring="roc_auc")
    r2 = cross_val_score(
        make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS)), features, age,
        cv=RepeatedKFold(n_splits=5, n_repeats=3, random_state=0), scoring="r2")
    return round(float(auc.mean()), 3), round(float(r2.mean()), 3)


def evaluate(encoder, windows, subject_index, group, age):
    encoder.eval()
    out = {}
    n_regions, n_subjects = windows.shape[2], len(group)
    for name, final_norm in (("ln", True), ("noln", False)):
        with torch.inference_mode():
            tokens = torch.cat([encoder(windows[i:i + 64], final_norm=final_norm)
                                for i in range(0, len(windows), 64)]).numpy()
        grid = tokens.reshape(len(tokens), n_regions, -1, tokens.shape[-1])
        readouts = {"roi_std": grid.std(2).reshape(len(tokens), -1)}
        if final_norm:
            readouts["mean"] = tokens.mean(1)
        for readout, values in readouts.items():
            per_subject = average_by_subject(values, subject_index, n_subjects)
            out[f"{name}_{readout}"] = scores(per_subject, group, age)
    return out


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    X, y = make_brain_dynamics(n_subjects=a.pretrain_subjects, n_timepoints=200, n_regions=100,
                               t_r=2.0, random_state=a.seed)
    group, age = y["group"].to_numpy()[:100], y["age"].to_numpy()[:100]
    gradients = GradientPositioner(n_components=30, random_state=a.seed).fit(X).gradients_
    n_regions, n_frames, patch = X[0].shape[1], a.n_frames, a.patch_size
    preprocessor = Preprocessor(n_frames, t_r=2.0, target_t_r=2.0, window="sliding",
                                stride=n_frames // 2,
                                normalization="robust")
    windows, subject_index = preprocessor.fit_transform(X)
    dataset = WindowDataset(windows, subject_index)
    scored = subject_index < 100
    eval_windows = torch.from_numpy(np.asarray(windows)[scored])
    subject_index = subject_index[scored]

    def build(seed):
        torch.manual_seed(seed)
        return BrainJEPA(gradients, embed_dim=64, depth=a.depth, num_heads=a.heads,
                         patch_size=patch, predictor_embed_dim=64,
                         predictor_depth=a.predictor_depth, n_patches=n_frames // patch,
                         patch_embed_init=a.init).train()

    def report(**fields):
        print(json.dumps({"seed": a.seed, **fields}), flush=True)

    for draw in range(a.controls):
        control = build(1000 + draw)
        report(control=1000 + draw,
               **evaluate(control.target_encoder, eval_windows, subject_index, group, age))

    model = build(a.init_seed)
    sampler = SpatiotemporalMaskSampler(n_regions, n_frames // patch, seed=a.init_seed + 7)
    loader = window_loader(dataset, a.batch, ShuffleSampler(len(dataset), a.init_seed + 11))
    schedule = PretrainSchedule.from_epochs(
        a.epochs, len(loader), warmup_epochs=a.warmup, lr=a.lr, final_lr=a.final_lr,
        ema_momentum=a.ema, final_ema_momentum=a.final_ema)
    total = a.epochs * len(loader)
    checkpoints = {round(total * (k + 1) / a.evals) for k in range(a.evals)}
    report(step=0, **evaluate(model.target_encoder, eval_windows, subject_index, group, age))

    class Probe(Callback):
        """Scores the target encoder at the checkpoint steps."""

        def on_train_begin(self, loop):
            self.losses, self.start = [], time.perf_counter()

        def on_step_end(self, loop, loss):
            self.losses.append(float(loss))
            if loop.step in checkpoints:
                report(step=loop.step, seconds=round(time.perf_counter() - self.start),
                       loss=round(float(np.mean(self.losses[-loop.steps_per_epoch:])), 4),
                       **evaluate(loop.model.target_encoder, eval_windows, subject_index,
                                  group, age))
                loop.model.train()

    PretrainLoop(model, loader, sampler, schedule, a.epochs, callbacks=[Probe()]).run()


if __name__ == "__main__":
    main()
