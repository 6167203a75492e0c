"""A small trained and exported model, shared by the tests of fbp.export and fbp.predict."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from fbp.data.synthetic import SMALL

TINY_MODEL = {
    "data": {"dataset": "synthetic", "options": SMALL, "image_size": 32, "resize": 37, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {"epochs": 2, "batch_size": 16, "lr": 0.01},
    # the centre crop of the cached 37 px face and both heads (fused): every step of the view and the heads counts
    "eval": {"batch_size": 64, "view": "center_crop", "predict": "fused", "fused_weight": 0.25},
}


@dataclass
class Exported:
    folder: Path  # the model folder
    config: object  # its TrialConfig
    results: list  # the FoldResults it was made from (their predictions: what evaluation gave)
    dataset: object


def export_folds(folder: Path, config, results, origin: dict | None = None) -> None:
    """Write `results`' fold models as a model folder, as `fbp-search export` does."""
    from fbp.export import build_manifest, fold_model_info, member_name, save_fold_runs, write_model_folder

    staging = folder.with_name(folder.name + "-kept")
    for r in results:
        save_fold_runs(staging, [r], config)
    files = {f"{member_name(r.fold, r.seed, 1)}.safetensors": staging / f"{member_name(r.fold, r.seed, 1)}.safetensors" for r in results}
    members = [{**fold_model_info(path), "file": name} for name, path in files.items()]
    origin = origin or {"study": "tiny", "spec_hash": "0" * 16, "trial_id": "t0", "params": {}, "objective": {"metric": "pc", "on": "test"}}
    write_model_folder(folder, build_manifest(config, members, origin), config, files)


@pytest.fixture(scope="session")
def exported(tmp_path_factory) -> Exported:
    from fbp.config import validate_config
    from fbp.data import load_dataset
    from fbp.kfold import run_kfold

    config = validate_config(TINY_MODEL)
    results = run_kfold(config, keep_models=True)
    folder = tmp_path_factory.mktemp("exported") / "model"
    export_folds(folder, config, results)
    return Exported(folder, config, results, load_dataset("synthetic", None, **SMALL))
