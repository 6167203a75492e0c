"""Ray for a study: a fresh local Ray, or a running cluster (`--address`), checked against what
the study asks of it before anything is written.

A local Ray's processes are recorded in the results directory (search.processes): a driver
killed by SIGKILL cannot shut its Ray down, and while its raylet and GCS then go, Ray's
DashboardAgent and RuntimeEnvAgent stay, under pid 1, deaf to SIGTERM. The next `run` or
`resume` of that directory ends them (search.runner).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from fbp.errors import InputError
from search.processes import Process, children, descendants, write_record
from search.spec import StudySpec

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


DASHBOARD_HOST = "127.0.0.1"  # Ray's dashboard has no login: this machine only


def init_options(address: str | None, dashboard: bool = False) -> dict:
    """`ray.init`'s arguments: join `address`, else start a local Ray ("local": never a stale
    cluster by accident). Ray's dashboard is off unless `dashboard` (`--ray-dashboard`), and
    then on the loopback address.

    Raises:
        InputError: `dashboard` with an `address`: a cluster's dashboard is the cluster's own,
            started by `ray start`.
    """
    options = {"address": address or "local", "include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if not dashboard:
        return options
    if address is not None:
        raise InputError(f"--ray-dashboard: turns on the dashboard of the local Ray a study starts; the cluster at --address {address} has its own (ray start --head --include-dashboard=true)")
    return {**options, "include_dashboard": True, "dashboard_host": DASHBOARD_HOST}


def dashboard_line(url: str) -> str:
    """What run and resume print for the dashboard they started. Ray 2.60's `ray.init` starts a
    local cluster with token authentication unless RAY_AUTH_MODE says otherwise, and then sets
    RAY_AUTH_MODE=token in this process: the dashboard's page asks for the token, which
    `ray get-auth-token` prints (its file: ~/.ray/auth_token)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return f"Ray dashboard: {url} (it asks for Ray's token: `ray get-auth-token` prints it)"
    return f"Ray dashboard: {url}"


def check_dashboard() -> None:
    """Refuse `--ray-dashboard` where Ray's dashboard cannot run, before Ray starts: without
    the packages of `ray[default]`, `ray.init` fails with a bare Exception and a log of causes.

    Raises:
        InputError: saying which package is missing and the pip line.
    """
    try:
        import ray.dashboard.optional_deps  # noqa: F401  (what Ray itself imports to tell whether its dashboard can run)
    except ImportError as e:
        raise InputError(f'--ray-dashboard: Ray\'s dashboard needs the full ray ({e}): pip install "ray[default]" (in a checkout: pip install -e ".[ray-dashboard]")') from None


def start_ray(address: str | None, spec: StudySpec, record: Path | None = None, dashboard: bool = False) -> str | None:
    """Join `address` or start a local Ray (`init_options`), then refuse a study whose trials
    ask for more GPUs than the cluster has. `record`: the folder where a local Ray started here
    records its processes (`session_processes`). Returns the URL of the Ray dashboard it
    started (`dashboard`), else None."""
    import ray

    url = None
    if not ray.is_initialized():
        options = init_options(address, dashboard)
        if dashboard:
            check_dashboard()
        before = _own_children()
        try:
            context = ray.init(**options)
        except ConnectionError as e:
            raise InputError(
                f"--address {address}: no Ray cluster answered ({e}). Check it with `ray status --address {address}`; "
                "if it was started with RAY_AUTH_MODE=token, set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH (or RAY_AUTH_TOKEN) here too"
            ) from None
        if address is None and record is not None:
            write_record(record, session_processes(before))
        if dashboard and context.dashboard_url:
            url = f"http://{context.dashboard_url}"
    gpus = ray.cluster_resources().get("GPU", 0)
    if spec.resources.gpu > max(gpus, 0) and spec.resources.gpu > 0:
        raise InputError(f"resources.gpu: {spec.resources.gpu} per trial, but the cluster has {gpus:g} GPUs")
    return url


def _own_children() -> set[int]:
    return {pid for pid, _ in children().get(os.getpid(), [])}


def session_processes(before: set[int]) -> list[Process]:
    """The local Ray that `ray.init` just started here: the driver's children it started (GCS,
    raylet, dashboard, monitors; those not among `before`) and everything below them (the
    agents, the first workers). Workers started later end with their raylet."""
    roots = [p for p in children().get(os.getpid(), []) if p[0] not in before]
    return roots + descendants(*(pid for pid, _ in roots))
