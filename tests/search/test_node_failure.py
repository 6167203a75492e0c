"""A worker node dies mid-fold: the trial restarts on the other node at its next fold."""

import threading
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from search.results import read_table
from search.runner import run_study
from search.spec import validate_spec
from tests.search.test_resume import STUDY as KILLED

pytestmark = pytest.mark.slow  # trains for long or starts Ray: not in the fast tier (pytest -m "not slow")

# the SIGKILL study, one trial with folds long enough for the node to die in the middle of one
STUDY = {**KILLED, "name": "nodes", "train": {**KILLED["train"], "epochs": 40}, "search": {**KILLED["search"], "num_trials": 1}}


@pytest.fixture
def two_node_cluster():
    """A head that runs no trials and two worker nodes of one CPU each, all on loopback
    (conftest sets RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0)."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield cluster, workers
    ray.shutdown()
    cluster.shutdown()


def test_a_dead_worker_node_costs_the_fold_it_was_training(two_node_cluster, tmp_path):
    cluster, workers = two_node_cluster
    results = tmp_path / "nodes"
    removed = {}

    def remove_the_trials_node():
        """Once fold 1 is on disk (fold 2 is training), remove the node that trained it."""
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            parts = list((results / "folds.parquet").glob("*-fold1.parquet"))
            if parts:
                node_id = pq.read_table(parts[0], columns=["node_id"]).column(0)[0].as_py()
                node = next(w for w in workers if w.node_id == node_id)
                cluster.remove_node(node)
                removed["node_id"] = node_id
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=remove_the_trials_node, daemon=True)
    watcher.start()
    outcome = run_study(validate_spec(STUDY, "nodes.yaml"), "nodes.yaml", results, max_failures=3)
    watcher.join(timeout=5)

    assert "node_id" in removed, "fold 1 never finished, so no node was removed"
    folds = read_table(results, "folds").sort_values("fold")
    assert outcome["errors"] == 0
    assert list(folds["fold"]) == [1, 2, 3] and (folds["status"] == "COMPLETE").all(), folds[["fold", "status", "error"]]
    # fold 1 was not trained again; folds 2 and 3 ran on the surviving node
    by_fold = folds.set_index("fold")
    assert by_fold.loc[1, "node_id"] == removed["node_id"]
    assert set(by_fold.loc[[2, 3], "node_id"]) == {w.node_id for w in workers} - {removed["node_id"]}
    assert pd.Timestamp(by_fold.loc[2, "started_at"]) > pd.Timestamp(by_fold.loc[1, "finished_at"])
