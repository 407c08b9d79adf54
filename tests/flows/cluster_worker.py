"""One process of a two-process Bytewax cluster reading a Kafka topic to its end.

Run by `test_cluster.py`: `python cluster_worker.py BOOTSTRAP TOPIC GROUP OUT PROC_ID ADDR,ADDR`.
Each process writes the outcomes its workers produced to OUT (JSON lines).
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from bytewax.testing import cluster_main

from arrecon.flows.live import kafka_input
from arrecon.flows.reconcile import FlowConfig, build_flow
from arrecon.flows.replay import CollectSink


def main(*args: str) -> None:
    bootstrap, topic, group, out, proc_id, addresses = args
    sink = CollectSink()
    flow = build_flow(
        kafka_input(bootstrap, topic, group=group, tail=False), sink, FlowConfig(snapshots=False)
    )
    cluster_main(flow, addresses.split(","), int(proc_id), worker_count_per_proc=1)
    with Path(out).open("wb") as handle:
        for tagged in sink.items:
            handle.write(orjson.dumps(tagged.outcome.to_record()) + b"\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
