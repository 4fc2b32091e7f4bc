"""One broker hop, timed: wall-clock stamps produced to TOPICS (round robin, keyed)
at RATE per second for SECS seconds and read back by one plain consumer.

    $WARDEN_VENV/bin/python bench/hop.py BOOTSTRAP RATE SECS PARTITIONS CONSUMER_PROPS TOPIC[,TOPIC...]

CONSUMER_PROPS is a comma list of librdkafka properties ("fetch.wait.max.ms=25",
or "" for the defaults). The topics must exist with PARTITIONS partitions each.
Prints the received count and p50 / p95 / p99 / max in milliseconds. Used in
bench/RESULTS.md (twelfth session) to find what tansu's fetch does with
fetch.wait.max.ms. Loopback only; stops by itself.
"""

import sys
import threading
import time

from confluent_kafka import Consumer, OFFSET_END, Producer, TopicPartition


def main():
    bootstrap, rate, secs, partitions = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    props = dict(kv.split("=", 1) for kv in sys.argv[5].split(",") if kv)
    topics = sys.argv[6].split(",")
    producer = Producer({"bootstrap.servers": bootstrap})
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hop", "enable.auto.commit": False, **props})
    consumer.assign([TopicPartition(t, p, OFFSET_END) for t in topics for p in range(partitions)])
    time.sleep(2)  # past the consumer's first metadata and offset lookups
    latencies, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            for m in consumer.consume(1000, 0.01):
                if not m.error():
                    latencies.append((time.time() - float(m.value())) * 1000)

    reader = threading.Thread(target=read)
    reader.start()
    start, sent = time.time(), 0
    while time.time() - start < secs:
        due = int((time.time() - start) * rate)
        while sent < due:
            producer.produce(topics[sent % len(topics)], str(time.time()).encode(), key=str(sent % 97))
            sent += 1
        producer.poll(0)
        time.sleep(0.001)
    producer.flush()
    time.sleep(2)
    stop.set()
    reader.join()
    consumer.close()
    if not latencies:
        sys.exit("nothing read back")
    latencies.sort()
    q = lambda f: latencies[min(len(latencies) - 1, int(f * len(latencies)))]
    print(f"props={props} read={len(latencies)}/{sent} p50={q(.5):.1f} p95={q(.95):.1f} p99={q(.99):.1f} max={latencies[-1]:.1f}")


if __name__ == "__main__":
    main()
