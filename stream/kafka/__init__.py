"""Kafka I/O: topic admin, the batch sender, the refetcher, frames and the
batcher process, and the broker profile; every workaround for the embedded
Tansu broker lives here (tansu.py), and only broker.py branches on it."""
