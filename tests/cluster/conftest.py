"""One cluster (2 gateways + 2 Rasa servers behind HAProxy) for every test of tests/cluster: starting one
takes minutes on two cores. The modules run in file order: test_cluster_replicas.py (scenarios, SIGKILLs
under load, the agent socket), then test_cluster_rollout.py (a promotion rolled across the Rasa servers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.harness import RunningCluster, running_cluster


@pytest.fixture(scope="session")
def cluster(
    trained_model: Path, help_centre_index: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningCluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster"), help_centre_index) as running:
        yield running
