"""Ray for a study: a fresh local Ray, or a running cluster (`--address`), checked against what
the study asks of it before anything is written."""

from __future__ import annotations

import logging
import os

from fbp.errors import InputError
from search.spec import StudySpec

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def start_ray(address: str | None, spec: StudySpec) -> None:
    """Join `address` or start a local Ray (never a stale cluster by accident), then refuse a
    study whose trials ask for more GPUs than the cluster has."""
    import ray

    if not ray.is_initialized():
        try:
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        except ConnectionError as e:
            raise InputError(
                f"--address {address}: no Ray cluster answered ({e}). Check it with `ray status --address {address}`; "
                "if it was started with RAY_AUTH_MODE=token, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) here too"
            ) from None
    gpus = ray.cluster_resources().get("GPU", 0)
    if spec.resources.gpu > max(gpus, 0) and spec.resources.gpu > 0:
        raise InputError(f"resources.gpu: {spec.resources.gpu} per trial, but the cluster has {gpus:g} GPUs")
