"""The reconciliation core: pure Python, no IO.

Nothing here imports Bytewax, Kafka, Redis or ClickHouse; time is passed in.
"""
