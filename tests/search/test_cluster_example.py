"""The example Ray cluster launcher file passes the checks `ray up` runs before it launches."""

from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

EXAMPLE = Path(__file__).parents[2] / "examples" / "cluster-aws.yaml"


def test_the_launcher_example_is_a_valid_cluster_config():
    config = yaml.safe_load(EXAMPLE.read_text())
    validate_config(prepare_config(config))
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["resources"]["GPU"] >= 1 and config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert all("RAY_AUTH_MODE=token" in c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"] if "ray start" in c)


def test_the_check_rejects_a_misspelt_key():
    config = yaml.safe_load(EXAMPLE.read_text())
    config["max_worker"] = config.pop("max_workers")
    with pytest.raises((jsonschema.ValidationError, ValueError, KeyError)):
        validate_config(prepare_config(config))
