"""The KRaft cluster id the Kafka service formats its storage with."""

from __future__ import annotations

import base64

from arrecon.flows import services


def test_cluster_ids_never_read_as_an_option_and_carry_16_bytes() -> None:
    ids = [services._cluster_id() for _ in range(3_000)]
    assert not [cluster_id for cluster_id in ids if cluster_id.startswith("-")]
    assert {len(base64.urlsafe_b64decode(cluster_id + "==")) for cluster_id in ids} == {16}
    assert len(set(ids)) == len(ids)
