"""One broker hop, timed: wall-clock stamps produced to TOPICS (round robin, keyed)
at RATE per second for SECS seconds and read back by one plain consumer.

    $WARDEN_VENV/bin/python bench/hop.py BOOTSTRAP RATE SECS PARTITIONS CONSUMER_PROPS TOPIC[,TOPIC...] [PAD]

CONSUMER_PROPS is a comma list of librdkafka properties ("fetch.wait.max.ms=25",
or "" for the defaults). The topics must exist with PARTITIONS partitions each.
PAD (default 0) pads each stamp with that many bytes, so messages can be the
size of real events (~250 bytes). Prints the received count and p50 / p95 / p99
/ max in milliseconds, overall and for each 10 s of sending, since a broker may
slow down as its log grows. Used in bench/RESULTS.md (twelfth and thirteenth
sessions) to find what tansu's fetch does with fetch.wait.max.ms and how its
hop changes over a run. Loopback only; stops by itself.
"""

import sys
import threading
import time

from confluent_kafka import Consumer, OFFSET_END, Producer, TopicPartition


def main():
    bootstrap, rate, secs, partitions = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    props = dict(kv.split("=", 1) for kv in sys.argv[5].split(",") if kv)
    topics = sys.argv[6].split(",")
    pad = b" " + b"x" * int(sys.argv[7]) if len(sys.argv) > 7 else b""
    producer = Producer({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hop", "enable.auto.commit": False, **props})
    consumer.assign([TopicPartition(t, p, OFFSET_END) for t in topics for p in range(partitions)])
    time.sleep(2)  # past the consumer's first metadata and offset lookups
    samples, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            for m in consumer.consume(1000, 0.01):
                if m.error():
                    continue
                try:
                    stamp = float(m.value().split(b" ", 1)[0])
                except ValueError:
                    continue  # not one of ours
                samples.append((stamp, (time.time() - stamp) * 1000))

    reader = threading.Thread(target=read)
    reader.start()
    start, sent = time.time(), 0
    while time.time() - start < secs:
        due = int((time.time() - start) * rate)
        while sent < due:
            producer.produce(topics[sent % len(topics)], str(time.time()).encode() + pad, key=str(sent % 97))
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    producer.flush()
    time.sleep(2)
    stop.set()
    reader.join()
    consumer.close()
    if not samples:
        sys.exit("nothing read back")
    print(f"props={props} read={len(samples)}/{sent} {summary([ms for _, ms in samples])}")
    for first in range(0, int(secs), 10):
        window = [ms for stamp, ms in samples if first <= stamp - start < first + 10]
        if window:
            print(f"  sent in {first}-{first + 10} s: {summary(window)}")


def summary(latencies):
    """p50 / p95 / p99 / max of latencies in milliseconds."""
    latencies = sorted(latencies)
    q = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))]
    return f"p50={q(.5):.1f} p95={q(.95):.1f} p99={q(.99):.1f} max={latencies[-1]:.1f}"


if __name__ == "__main__":
    main()
