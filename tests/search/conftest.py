import os

import pytest

# Ray in tests: loopback only, no dashboard, no usage stats, never a stale cluster.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray with 2 CPUs and one declared (logical) GPU, shut down after the module."""
    import ray

    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


TRAINED = {
    "data": {"dataset": "synthetic", "options": {"n": 60, "size": 48, "seed": 36}, "image_size": 32, "folds": [1, 2]},
    "model": {"backbone": "test_resnet", "pretrained": False},
    "train": {"epochs": 2, "batch_size": 16},
    "eval": {"predict": "fused"},
}


@pytest.fixture(scope="session")
def trained_results(tmp_path_factory):
    """`fbp-search train` of a tiny config (2 folds): a results directory with its fold models kept."""
    import yaml

    from search.cli import main

    folder = tmp_path_factory.mktemp("trained")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TRAINED))
    assert main(["train", str(folder / "tiny.yaml"), "--out", str(folder / "results")]) == 0
    return folder / "results"
