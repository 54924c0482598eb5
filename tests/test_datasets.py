"""File-backed datasets end to end: files written in the real formats, read by the real loaders, trained on."""
from __future__ import annotations

import os
import re
import urllib.error
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from formats import table, write_cifar10, write_image_folder, write_mnist
from mlflow.tracking import MlflowClient

from helpers import CONF, make_cfg, train_cli
from trainer.config import validate
from trainer.data import sources
from trainer.data.prepare import prepare
from trainer.data.vision import load_torchvision
from trainer.errors import ConfigError, UserError
from trainer.run import run
from trainer.train import persist

RESAMPLERS = sorted(p.stem for p in (CONF / "resampling").glob("*.yaml"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> SimpleNamespace:
    """One folder with every format: MNIST (plain IDX), Fashion-MNIST (gzipped IDX), CIFAR-10, PNGs, tables."""
    base = tmp_path_factory.mktemp("datasets")
    root = base / "data"
    written = {"mnist": write_mnist(root), "fashion_mnist": write_mnist(root, "FashionMNIST", gz=True, seed=1),
               "cifar10": write_cifar10(root)}
    pets = write_image_folder(base / "pets")
    df = table()
    df.to_csv(base / "animals.csv", index=False)
    df.to_parquet(base / "animals.parquet")
    return SimpleNamespace(base=base, root=root, written=written, pets=pets, csv=base / "animals.csv",
                           parquet=base / "animals.parquet", df=df)


@pytest.fixture
def fake_cifar_checksums(monkeypatch):
    """torchvision checks CIFAR-10's files against the md5 sums of the official ones, which ours cannot match."""
    import torchvision.datasets.cifar as cifar

    monkeypatch.setattr(cifar, "check_integrity", lambda path, md5=None: os.path.isfile(path))


def chosen(name: str, files: SimpleNamespace) -> list[str]:
    """The overrides that select dataset `name` on the files of the fixture."""
    return {
        "mnist": ["dataset=mnist", f"dataset.root={files.root}", "dataset.download=false"],
        "fashion_mnist": ["dataset=fashion_mnist", f"dataset.root={files.root}", "dataset.download=false"],
        "cifar10": ["dataset=cifar10", f"dataset.root={files.root}", "dataset.download=false"],
        "image_folder": ["dataset=image_folder", f"dataset.path={files.pets}", "dataset.image_size=16"],
        "csv": ["dataset=csv", f"dataset.path={files.csv}", "dataset.target=species"],
        "parquet": ["dataset=csv", f"dataset.path={files.parquet}", "dataset.target=species"],
    }[name]


# ---- torchvision datasets: the official test split, val carved from train -------------------------------------

@pytest.mark.parametrize("name,shape", [("mnist", (1, 28, 28)), ("fashion_mnist", (1, 28, 28)),
                                        ("cifar10", (3, 32, 32))])
def test_official_test_split_is_the_test_split_and_val_comes_from_train(files, fake_cifar_checksums, name, shape):
    ds = prepare(make_cfg(*chosen(name, files), "imbalance=none")).dataset
    written = files.written[name]
    test_x, test_y = written["test"]
    assert np.array_equal(ds.test.y, test_y) and np.array_equal(ds.test.x, test_x)
    assert ds.images and ds.train.x.dtype == np.uint8 and ds.input_shape == shape
    train_x, train_y = written["train"]
    assert len(ds.train.y) + len(ds.val.y) == len(train_y) and len(ds.val.y) == 0.2 * len(train_y)
    assert ds.val.counts(10) == [len(ds.val.y) // 10] * 10  # stratified
    rows = {r.tobytes() for r in train_x}
    assert all(r.tobytes() in rows for r in ds.val.x) and all(r.tobytes() in rows for r in ds.train.x)


def test_mnist_gz_files_placed_by_hand_are_unpacked(files):
    raw = files.root / "FashionMNIST" / "raw"
    assert (raw / "train-images-idx3-ubyte.gz").is_file()
    load_torchvision("fashion_mnist", str(files.root), download=False)
    assert (raw / "train-images-idx3-ubyte").is_file() and (raw / "t10k-labels-idx1-ubyte").is_file()


@pytest.mark.parametrize("name,folder,cls", [("mnist", "MNIST/raw", "MNIST"), ("cifar10", "cifar-10-batches-py",
                                                                                "CIFAR10")])
def test_offline_without_files_is_one_clear_error(tmp_path, name, folder, cls):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    with mock.patch("urllib.request.urlopen", offline), pytest.raises(UserError) as err:
        load_torchvision(name, str(tmp_path / "data"), download=True)
    message = str(err.value)
    assert f"{tmp_path / 'data' / folder}/" in message and "downloading them failed" in message
    assert "Name or service not known" in message
    assert f"from torchvision.datasets import {cls}; {cls}(" in message and "download=True" in message
    expected = "train-images-idx3-ubyte" if name == "mnist" else "data_batch_1"
    assert expected in message


def test_missing_files_with_download_off_say_so(tmp_path):
    with pytest.raises(UserError, match=r"the files are not in .*MNIST/raw/ \(expected train-images-idx3-ubyte.*"
                                        r"dataset.download=false"):
        load_torchvision("mnist", str(tmp_path), download=False)


def test_files_that_fail_torchvisions_checks_are_called_corrupted(files, tmp_path):
    write_cifar10(tmp_path)  # not the official bytes: torchvision's md5 check refuses them
    with pytest.raises(UserError, match="torchvision cannot use the files in .*incomplete or corrupted"):
        load_torchvision("cifar10", str(tmp_path), download=False)
    write_mnist(tmp_path)
    image_file = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    image_file.write_bytes(image_file.read_bytes()[:1000])  # truncated
    with pytest.raises(UserError, match="incomplete or corrupted"):
        load_torchvision("mnist", str(tmp_path), download=False)


def test_cli_offline_is_one_message_without_traceback(tmp_path):
    # A proxy that refuses connections: downloading fails here as on a machine without network.
    proxy = "http://127.0.0.1:9"
    env = {"http_proxy": proxy, "https_proxy": proxy, "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "no_proxy": "",
           "NO_PROXY": ""}
    proc = train_cli("dataset=mnist", "trainer.epochs=1", cwd=tmp_path, env=env, timeout=120)
    assert proc.returncode == 2
    assert f"error: dataset=mnist: the files are not in {tmp_path / 'data' / 'MNIST' / 'raw'}/" in proc.stderr
    assert "MNIST('data', download=True)" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_trains_mnist_from_gz_files_in_data(tmp_path):
    write_mnist(tmp_path / "data", gz=True)
    proc = train_cli("dataset=mnist", "model=cnn", "trainer.epochs=1", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "run 'dataset=mnist,model=cnn,trainer.epochs=1' finished: 1 epoch," in proc.stdout


# ---- every dataset trains, with every train-side option --------------------------------------------------------

RUNS = [("mnist", "model=cnn"), ("fashion_mnist", "model=mlp"), ("cifar10", "model=logreg"),
        ("image_folder", "model=cnn"), ("csv", "model=mlp"), ("parquet", "model=cnn")]


@pytest.mark.parametrize("name,model", RUNS, ids=[f"{n}-{m}" for n, m in RUNS])
def test_each_dataset_trains_and_logs_a_finished_run(files, fake_cifar_checksums, run_cfg, store, name, model):
    cfg = run_cfg(*chosen(name, files), model, "imbalance=longtail", "imbalance.ratio=5")
    result = run(cfg)
    r = MlflowClient(store).get_run(result.run_id)
    assert r.info.status == "FINISHED" and r.data.tags["dataset"] == cfg.dataset.name
    classes = 3 if name in ("image_folder", "csv", "parquet") else 10
    assert sum(k.startswith("test/recall/") for k in r.data.metrics) == classes


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here: checked on CPU only")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
def test_images_sit_on_the_device_as_uint8_and_a_model_learns_them(files, run_cfg, device):
    seen = {}

    def spy(model, loss_fn, optimizer, train, val, *args, **kwargs):
        seen.update(train=(train.x.dtype, train.x.device.type), val=(val.x.dtype, val.x.device.type))
        return fit(model, loss_fn, optimizer, train, val, *args, **kwargs)

    fit = persist.fit
    with mock.patch.object(persist, "fit", spy):
        result = run(run_cfg(*chosen("mnist", files), "imbalance=none", "trainer.epochs=6", f"trainer.device={device}"))
    assert seen["train"] == seen["val"] == (torch.uint8, device)
    assert result.test["accuracy"] > 0.5  # ten classes: chance is 0.1


def test_augmented_runs_are_reproducible_from_the_seed(files, run_cfg):
    overrides = [*chosen("image_folder", files), "dataset.augment=true", "model=cnn"]
    a, b = run(run_cfg(*overrides, "seed=3")), run(run_cfg(*overrides, "seed=3"))
    assert a.test == b.test and a.val == b.val


def test_smote_on_images_trains_on_float_pixels(files, run_cfg):
    prep = prepare(run_cfg(*chosen("mnist", files), "resampling=smote", "imbalance.ratio=5"))
    assert prep.dataset.train.x.dtype == np.float32 and prep.dataset.val.x.dtype == np.uint8
    assert 0 <= prep.dataset.train.x.min() and prep.dataset.train.x.max() <= 255
    result = run(run_cfg(*chosen("mnist", files), "resampling=smote", "imbalance.ratio=5", "trainer.epochs=1"))
    assert 0.0 <= result.test["balanced_accuracy"] <= 1.0


# ADASYN weights its samples by the other classes among each sample's neighbours and refuses data where there
# are none (a clear UserError, tested in test_resampling); label noise gives the small test files such neighbours.
TRAIN_SIDE = ([["imbalance=longtail", "imbalance.ratio=5"], ["imbalance=step"], ["noise=symmetric"],
               ["noise=pairflip", "noise.rate=0.4"]]
              + [[f"resampling={r}", "imbalance=longtail", "imbalance.ratio=5"]
                 + (["noise=symmetric"] if r == "adasyn" else []) for r in RESAMPLERS])
# Samplers that interpolate new rows refuse tables with categorical columns (test_real_data): on the table they
# run on its numeric columns.
INTERPOLATING = {f"resampling={r}" for r in ("adasyn", "borderline_smote", "smote_tomek", "smote_enn")}


@pytest.mark.parametrize("name", ["mnist", "cifar10", "image_folder", "csv"])
@pytest.mark.parametrize("overrides", TRAIN_SIDE, ids=lambda o: " ".join(o))
def test_every_dataset_takes_every_train_side_option(files, fake_cifar_checksums, name, overrides):
    numeric = ["dataset.features=[height,weight]"] if name == "csv" and INTERPOLATING & set(overrides) else []
    base = prepare(make_cfg(*chosen(name, files), *numeric, "imbalance=none")).dataset
    changed = prepare(make_cfg(*chosen(name, files), *numeric, *overrides)).dataset
    for part in ("val", "test"):
        assert np.array_equal(getattr(base, part).y, getattr(changed, part).y)
        if not base.tabular:  # tables are standardised with the statistics of the train split they end up with
            assert np.array_equal(getattr(base, part).x, getattr(changed, part).x)
    assert changed.train.x.shape[1:] == base.train.x.shape[1:] and changed.images == base.images
    if changed.images:
        assert changed.train.x.min() >= 0 and changed.train.x.max() <= 255  # still pixels for the input module


# ---- CSV and parquet tables ------------------------------------------------------------------------------------

def test_table_numeric_columns_first_categories_one_hot(files):
    ds = sources.load(make_cfg(*chosen("csv", files)).dataset, make_cfg().split, 0)
    assert ds.classes == ["ant", "bee", "cow"] and ds.tabular and ds.numeric == (0, 1)
    assert ds.train.x.shape[1] == 2 + 3  # height, weight, then red/green/blue one-hot
    onehot = np.concatenate([ds.train.x, ds.val.x, ds.test.x])[:, 2:]
    assert set(np.unique(onehot)) == {0.0, 1.0} and np.all(onehot.sum(axis=1) == 1)
    heights = np.sort(np.concatenate([ds.train.x, ds.val.x, ds.test.x])[:, 0])
    assert np.allclose(heights, np.sort(files.df["height"].to_numpy()))
    parquet = sources.load(make_cfg(*chosen("parquet", files)).dataset, make_cfg().split, 0)
    assert np.array_equal(parquet.test.x, ds.test.x) and np.array_equal(parquet.test.y, ds.test.y)


def test_table_standardisation_uses_train_statistics_only(files):
    cfg = make_cfg(*chosen("csv", files), "imbalance=none")
    raw = sources.load(cfg.dataset, cfg.split, cfg.seed)
    ds = prepare(cfg).dataset
    mean, std = raw.train.x[:, :2].mean(axis=0), raw.train.x[:, :2].std(axis=0)
    assert np.allclose(ds.train.x[:, :2].mean(axis=0), 0, atol=1e-5)
    assert np.allclose(ds.test.x[:, :2], (raw.test.x[:, :2] - mean) / std, atol=1e-5)
    everything = np.concatenate([raw.train.x, raw.val.x, raw.test.x])[:, :2]
    assert not np.allclose(ds.test.x[:, :2], (raw.test.x[:, :2] - everything.mean(0)) / everything.std(0), atol=1e-3)
    assert np.array_equal(ds.test.x[:, 2:], raw.test.x[:, 2:])  # one-hot columns are not scaled


def test_table_features_and_categorical_lists(files):
    ds = sources.load(make_cfg(*chosen("csv", files), "dataset.features=[height,colour]").dataset, make_cfg().split, 0)
    assert ds.train.x.shape[1] == 1 + 3 and ds.numeric == (0,)
    ds = sources.load(make_cfg(*chosen("csv", files), "dataset.categorical=[colour]").dataset, make_cfg().split, 0)
    assert ds.train.x.shape[1] == 5 and ds.numeric == (0, 1)


def write(df, tmp_path: Path, name: str = "t.csv") -> list[str]:
    df.to_csv(tmp_path / name, index=False)
    return ["dataset=csv", f"dataset.path={tmp_path / name}", "dataset.target=species"]


@pytest.mark.parametrize("bad,message", [
    (["dataset.target=kind"], r"dataset.target: no column 'kind' in .*; its columns are height, weight, colour, species"),
    (["dataset.features=[height,age]"], r"dataset.features: no column 'age'"),
    (["dataset.features=[height,species]"], r"dataset.features lists the target column 'species'"),
    (["dataset.categorical=[shade]"], r"dataset.categorical: no column 'shade'"),
])
def test_table_column_errors_name_the_setting_and_the_columns(files, tmp_path, bad, message):
    with pytest.raises(UserError, match=message):
        prepare(make_cfg(*write(files.df, tmp_path), *bad))


def test_non_numeric_value_in_a_numeric_column_names_column_row_and_value(files, tmp_path):
    df = files.df.astype({"weight": object})
    df.loc[7, "weight"] = "heavy"
    with pytest.raises(UserError, match=r"'weight' holds numbers but also non-numeric values \('heavy'\) in "
                                        r"data row\(s\) 8: .*dataset.categorical"):
        prepare(make_cfg(*write(df, tmp_path)))
    df = files.df.copy()
    df.loc[[2, 9], "height"] = np.nan
    with pytest.raises(UserError, match=r"numeric column 'height' is empty in data row\(s\) 3, 10"):
        prepare(make_cfg(*write(df, tmp_path)))


def test_every_unusable_column_is_named_at_once_with_the_override_that_leaves_them_out(files, tmp_path):
    df = files.df.assign(name=[f"animal-{i}" for i in range(len(files.df))], **{"hind legs": 4.0})
    df.loc[0, "height"] = np.nan
    with pytest.raises(UserError) as err:
        prepare(make_cfg(*write(df, tmp_path)))
    message = str(err.value)
    assert "2 column(s)" in message and "'height' is empty in data row(s) 1" in message
    assert "'name' has 150 distinct non-numeric values, more than dataset.max_categories=50" in message
    assert message.endswith("dataset.features=[weight,colour,'hind legs'].")
    fixed = make_cfg(*write(df, tmp_path), "dataset.features=[weight,colour,'hind legs']")
    assert prepare(fixed).dataset.input_shape == (2 + 3,)


def test_a_class_with_a_single_row_is_named(files, tmp_path):
    import pandas as pd

    df = pd.concat([files.df, files.df.iloc[:1].assign(species="eel")])
    with pytest.raises(UserError, match=r"dataset.target=species: class\(es\) 'eel' \(1 row\) have fewer than 3 rows"):
        prepare(make_cfg(*write(df, tmp_path)))


def test_a_missing_table_file_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        prepare(make_cfg("dataset=csv", f"dataset.path={tmp_path / 'nope.csv'}", "dataset.target=y"))


def test_a_table_with_a_header_and_no_rows_is_named(tmp_path):
    (tmp_path / "empty.csv").write_text("height,weight,species\n")
    with pytest.raises(UserError, match=r"empty.csv: the file has a header \(3 columns\) but no data rows"):
        prepare(make_cfg("dataset=csv", f"dataset.path={tmp_path / 'empty.csv'}", "dataset.target=species"))
    (tmp_path / "empty.arff").write_text("@relation e\n@attribute a real\n@attribute c {x,y}\n@data\n")
    with pytest.raises(UserError, match=r"empty.arff: the file has a header \(2 columns\) but no data rows"):
        prepare(make_cfg("dataset=csv", f"dataset.path={tmp_path / 'empty.arff'}"))


def test_a_target_column_with_one_class_is_refused(files, tmp_path):
    # it trained, and reported accuracy and balanced accuracy 1.0 by predicting the one class
    with pytest.raises(UserError, match=r"dataset.target=species: all 150 rows have the class 'cat', and a classifier "
                                        r"needs at least two classes"):
        prepare(make_cfg(*write(files.df.assign(species="cat"), tmp_path)))


@pytest.mark.parametrize("cell,shown", [("1e400", "inf"), ("inf", "inf"), ("-inf", "-inf"), ("1e200", "1e+200")])
def test_a_cell_that_is_no_finite_float32_is_named_with_its_column_and_rows(files, tmp_path, cell, shown):
    # 1e400 in a validation row gave val/ce nan at every epoch and exit 0; inf or 1e200 in a train row was reported
    # as a training loss gone non-finite, "Lower optim.lr"
    lines = files.df.to_csv(index=False).splitlines()
    for row in (4, 90):  # data rows 4 and 90 (line 0 is the header)
        height, _, rest = lines[row].split(",", 2)
        lines[row] = ",".join([height, cell, rest])
    (tmp_path / "t.csv").write_text("\n".join(lines) + "\n")
    shown = re.escape(shown)
    with pytest.raises(UserError, match=rf"numeric column 'weight' holds values that are not finite float32 numbers "
                                        rf"\({shown}, {shown}: .*\) in data row\(s\) 4, 90"):
        prepare(make_cfg("dataset=csv", f"dataset.path={tmp_path / 't.csv'}", "dataset.target=species"))


def test_a_folder_given_as_a_table_and_a_file_as_an_image_folder_are_named(files, tmp_path):
    with pytest.raises(UserError, match=r"dataset.path=.* is a folder; dataset=csv reads one table file .* use "
                                        r"dataset=image_folder"):
        prepare(make_cfg("dataset=csv", f"dataset.path={tmp_path}", "dataset.target=y"))
    with pytest.raises(UserError, match=r"dataset.path=.*animals.csv is a file; .* use dataset=csv"):
        prepare(make_cfg("dataset=image_folder", f"dataset.path={files.csv}"))


def test_a_latin1_table_names_the_line_and_the_encoding_setting_that_reads_it(files, tmp_path):
    df = files.df.assign(colour=files.df.colour.replace({"red": "r\u00e9d"}))
    df.to_csv(tmp_path / "latin.csv", index=False, encoding="latin-1")
    first = 2 + int(np.flatnonzero(df.colour == "r\u00e9d")[0])  # the header is line 1
    chose = ["dataset=csv", f"dataset.path={tmp_path / 'latin.csv'}", "dataset.target=species"]
    with pytest.raises(UserError, match=rf"latin.csv is not utf-8 text \(line {first}: byte b'\\xe9'\), and "
                                        r"dataset.encoding=utf-8. Name the file's encoding, e.g. "
                                        r"dataset.encoding=latin-1"):
        prepare(make_cfg(*chose))
    ds = prepare(make_cfg(*chose, "dataset.encoding=latin-1")).dataset
    assert ds.train.x.shape[1] == 2 + df.colour.nunique()
    with pytest.raises(ConfigError, match="dataset.encoding"):
        validate(make_cfg(*chose, "dataset.encoding=klingon"))


def test_a_table_run_logged_before_dataset_encoding_existed_resumes_as_utf8():
    from omegaconf import OmegaConf

    from trainer.tracking.resume import config_diff

    now = make_cfg("dataset=csv", "dataset.path=a.csv", "dataset.target=y")
    before = OmegaConf.create(OmegaConf.to_container(now))
    del before.dataset["encoding"]
    assert config_diff(before, now) == []  # utf-8 is what such a run read its file as
    assert config_diff(before, make_cfg("dataset=csv", "dataset.path=a.csv", "dataset.target=y",
                                        "dataset.encoding=latin-1")) == ["dataset.encoding: (absent) -> latin-1"]


# ---- image folders ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("grayscale,channels", [(False, 3), (True, 1)])
def test_image_folder_reads_one_class_per_folder_resized_and_cropped(files, grayscale, channels):
    cfg = make_cfg(*chosen("image_folder", files), f"dataset.grayscale={str(grayscale).lower()}", "imbalance=none")
    ds = prepare(cfg).dataset
    assert ds.classes == ["cat", "dog", "fox"] and ds.images and ds.train.x.dtype == np.uint8
    assert ds.input_shape == (channels, 16, 16)
    assert sum(len(getattr(ds, p).y) for p in ("train", "val", "test")) == 60
    # the class square survives resizing: class 0's lies in the top-left quarter, class 1's next to it
    cat = ds.train.x[ds.train.y == 0].astype(float).mean(axis=(0, 1))
    assert cat[:3, :3].mean() > 200 and cat[:4, 8:].mean() < 100


def test_image_folder_errors(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        prepare(make_cfg("dataset=image_folder", f"dataset.path={tmp_path / 'nope'}"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="Put the images of each class in their own sub-folder"):
        prepare(make_cfg("dataset=image_folder", f"dataset.path={tmp_path / 'empty'}"))
    pets = write_image_folder(tmp_path / "pets", per_class=4)
    (pets / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot read the image .*broken.png"):
        prepare(make_cfg("dataset=image_folder", f"dataset.path={pets}"))


# ---- settings ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides,key", [
    (["dataset=csv", "dataset.target=y"], "dataset.path"),
    (["dataset=csv", "dataset.path=a.csv"], "dataset.target"),
    (["dataset=csv", "dataset.path=a.csv", "dataset.target=y", "dataset.features=3"], "dataset.features"),
    (["dataset=image_folder"], "dataset.path"),
    (["dataset=image_folder", "dataset.path=x", "dataset.image_size=4"], "dataset.image_size"),
    (["dataset=mnist", "dataset.download=maybe"], "dataset.download"),
    (["dataset=cifar10", "dataset.augment=1"], "dataset.augment"),
])
def test_bad_dataset_settings_are_refused_before_any_work(overrides, key):
    with pytest.raises(ConfigError) as err:
        validate(make_cfg(*overrides))
    assert err.value.key == key


@pytest.mark.slow
def test_cifar10_with_resnet18_and_augmentation(files, fake_cifar_checksums, run_cfg, store):
    result = run(run_cfg(*chosen("cifar10", files), "model=resnet18", "imbalance=none", "trainer.epochs=2"))
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"


def test_resnet18_trains_end_to_end_on_small_images(files, run_cfg, store):
    result = run(run_cfg(*chosen("image_folder", files), "dataset.image_size=8", "dataset.grayscale=true",
                         "dataset.augment=true", "model=resnet18", "regularization=dropout", "trainer.epochs=1"))
    assert MlflowClient(store).get_run(result.run_id).info.status == "FINISHED"


def test_a_model_that_does_not_fit_the_data_is_one_user_error(run_cfg):
    with pytest.raises(UserError, match=r"model=resnet18 takes images \(C, H, W\)"):
        run(run_cfg("dataset=breast_cancer", "model=resnet18"))
