"""The reference point: a trivial Faust agent that forwards every message.

BENCH_TUNED unset: Faust's defaults, plus only what Tansu needs to work at
all (stream/kafka/tansu.py) - the "plain Faust agent" of issue 4.
BENCH_TUNED=1: also the producer and poll settings memberstream's app uses
(stream/worker/app.py), to show how much of the gap tuning alone closes.
Run by `memberstream bench`: `python -m bench.faust_trivial worker -l warn`.
Environment: BENCH_BROKER (kafka://host:port), BENCH_IN, BENCH_OUT,
BENCH_WEB_PORT, BENCH_DATADIR.
"""
import os

import faust

from stream.kafka import tansu

tansu.patch_faust()

TUNED = dict(broker_max_poll_records=5000, stream_buffer_maxsize=20000, producer_linger=0.005,
             producer_max_batch_size=262144)

tuned = os.environ.get("BENCH_TUNED") == "1"
app = faust.App(
    # Its own consumer group per variant: each must read the input from the start.
    "bench-faust-trivial-tuned" if tuned else "bench-faust-trivial", broker=os.environ["BENCH_BROKER"],
    store="memory://",
    autodiscover=False, topic_partitions=4, topic_replication_factor=1,
    web_port=int(os.environ.get("BENCH_WEB_PORT", "6066")), web_host="127.0.0.1",
    web_bind="127.0.0.1", consumer_auto_offset_reset="earliest",
    datadir=os.environ.get("BENCH_DATADIR", ".memberstream/bench/faust"),
    **tansu.FAUST_SETTINGS, **(TUNED if tuned else {}))
source = app.topic(os.environ["BENCH_IN"], key_type=bytes, value_type=bytes,
                   key_serializer="raw", value_serializer="raw")
sink = app.topic(os.environ["BENCH_OUT"], key_type=bytes, value_type=bytes,
                 key_serializer="raw", value_serializer="raw")


@app.agent(source)
async def forward(stream):
    async for event in stream.events():
        await sink.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()
