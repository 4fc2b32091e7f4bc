//! End-to-end benchmark: warden through a real broker, against the broker's own
//! ceiling, in one run on one machine.
//!
//! 1. Starts tansu (`$WARDEN_TANSU`) on a free loopback port and pre-loads N
//!    generated events (keyed by tenant) into the input topics.
//! 2. Ceiling: a plain rdkafka consumer that only counts reads all N.
//! 3. Throughput: `warden run` (a fresh group) processes all N; rate from the last
//!    sample of `warden_events_total` that read zero to the one that read N (a
//!    lower bound; the rate after the first nonzero sample is printed beside it).
//! 4. Latency: events produced at each RATE_FRACTION (default 0.5; a comma list
//!    runs several phases in the order given, on one broker and one warden) of
//!    warden's measured rate, each stamped with the wall clock as its `ts`; every
//!    output record's arrival minus its `event_ts` is one end-to-end sample
//!    (produce → broker → warden → broker → this consumer).
//!    Each phase also reports warden's view over the phase: the input hop
//!    (`warden_input_delay_seconds`, the message's timestamp to its arrival) and
//!    its own share (`warden_process_latency_seconds`, arrival to the output's
//!    acknowledgement); and, measured at the same time through the same producer,
//!    a plain consumer's single hop on `bench.echo` (1,000 stamps/s).
//!
//! `cargo run --release -p warden-bench --bin warden-harness -- [EVENTS] [LATENCY_SECS] [RATE_FRACTION,...]`
//!
//! Scale-out (docs/scaling.md): `HARNESS_INSTANCES=N` runs N wardens in one consumer
//! group (own state directory and HTTP port each; throughput is the sum of their
//! counters), `HARNESS_PARTITIONS=P` sets the partitions per input topic (default 3).
//! `LATENCY_SECS=0` skips the latency phase.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use warden_bench::gen::{Generator, Profile};
use warden_bench::rig::{free_port, http_get, metric_sum, metrics_page, producer, send, start_tansu, Proc, INPUTS};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Replaces the event's `ts` with `ts`.
fn with_ts(line: &str, ts: i64) -> String {
    let Some(start) = line.find("\"ts\":") else {
        return line.to_string();
    };
    let rest = &line[start + 5..];
    let end = rest.find(',').unwrap_or(rest.len());
    format!("{}\"ts\":{ts}{}", &line[..start], &rest[end..])
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let instances = env_num("HARNESS_INSTANCES", 1).max(1);
    let partitions = env_num("HARNESS_PARTITIONS", 3).max(1) as i32;
    let mut args = std::env::args().skip(1);
    let events: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(300_000);
    let latency_secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let fractions: Vec<f64> =
        args.next().map(|a| a.split(',').filter_map(|f| f.parse().ok()).collect()).unwrap_or_else(|| vec![0.5]);
    let exe = std::env::current_exe().expect("exe");
    let warden = exe.with_file_name("warden");
    let (_broker, bootstrap) = start_tansu(partitions, &["bench.echo"]);

    // 1. Pre-load.
    let p = producer(&bootstrap);
    let mut g = Generator::new(Profile::mixed(events), 11);
    let mut line = String::new();
    let t = Instant::now();
    while g.next_into(&mut line) {
        send(&p, &line);
    }
    p.flush(Duration::from_secs(120)).expect("pre-load delivered");
    eprintln!("pre-loaded {events} events in {:.1} s", t.elapsed().as_secs_f64());

    // 2. Ceiling: read everything, count only.
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "ceiling")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for topic in INPUTS {
        for part in 0..partitions {
            tpl.add_partition_offset(topic, part, Offset::Beginning).expect("tpl");
        }
    }
    c.assign(&tpl).expect("assign");
    let (mut read, mut first) = (0u64, None);
    let deadline = Instant::now() + Duration::from_secs(600);
    while read < events && Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            first.get_or_insert_with(Instant::now);
            read += u64::from(m.payload().is_some());
        }
    }
    let ceiling = read as f64 / first.map_or(f64::NAN, |f| f.elapsed().as_secs_f64());
    drop(c);
    eprintln!("ceiling: {ceiling:.0} events/s ({read} read)");

    // 3. warden over the same events.
    let dir = std::env::temp_dir().join(format!("warden-harness-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("w.toml");
    std::fs::write(
        &cfg,
        std::env::var("HARNESS_CONFIG").unwrap_or_else(|_| {
            "[kafka.consumer]\n\"session.timeout.ms\" = \"6000\"\n\"heartbeat.interval.ms\" = \"500\"\n".into()
        }),
    )
    .expect("cfg");
    let https: Vec<String> = (0..instances).map(|_| format!("127.0.0.1:{}", free_port())).collect();
    let wardens: Vec<Proc> = https
        .iter()
        .enumerate()
        .map(|(i, http)| {
            Proc(
                Command::new(&warden)
                    .arg("run")
                    .arg("--config")
                    .arg(&cfg)
                    .args(["--brokers", &bootstrap, "--group", "bench", "--http", http, "--state"])
                    .arg(dir.join(format!("state-{i}")))
                    .env("WARDEN_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("warden starts"),
            )
        })
        .collect();
    let http = https[0].clone();
    let counted = |text: &str| metric_sum(text, "warden_events_total") + metric_sum(text, "warden_dlq_total");
    let (mut started, mut last, mut idle_until) = (None, 0.0, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut report = Instant::now();
    while last < events as f64 && Instant::now() < deadline {
        let asked = Instant::now();
        let pages: Vec<String> = https.iter().map(|h| http_get(h, "/metrics")).collect();
        // A refused or rate-limited answer (warden allows 50 requests/s per
        // peer) is no sample: read as a count it would be zero.
        if pages.iter().any(|p| !p.starts_with("HTTP/1.1 200")) {
            std::thread::sleep(Duration::from_millis(25));
            continue;
        }
        last = pages.iter().map(|p| counted(p)).sum();
        if last == 0.0 {
            idle_until = asked;
        }
        if last > 0.0 && started.is_none() {
            started = Some((Instant::now(), last));
        }
        if report.elapsed() > Duration::from_secs(1) {
            eprintln!("  {last} events counted");
            report = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let (t0, n0) = started.expect("warden processed something");
    let done = t0.elapsed().as_secs_f64();
    // Two estimates, both from warden's counter as `/metrics` shows it (each
    // partition adds to it every 0.1 s): from the first nonzero sample,
    // leaving out the events counted by then (biased low when the first batches
    // ran faster than the rest, as they do), and from the last sample that
    // still read zero, which also charges up to one flush interval before the
    // first event (a lower bound). The ratio uses the second.
    let rate_after_first = (last - n0) / done;
    let rate = last / (done + t0.duration_since(idle_until).as_secs_f64());
    eprintln!("warden: {rate:.0} events/s from the last zero sample, {rate_after_first:.0} after the first count ({last} counted)");

    // 4. Latency at fractions of warden's rate, against the same running instance.
    println!(
        "events={events} instances={instances} partitions={partitions} ceiling_eps={ceiling:.0} warden_eps={rate:.0} warden_eps_after_first_count={rate_after_first:.0} ratio={:.2}",
        rate / ceiling
    );
    if std::env::var("HARNESS_RESTORE").is_ok_and(|v| v == "1") {
        // The usage gauges are refreshed every 10 s: wait for a pass after the last event.
        std::thread::sleep(Duration::from_secs(11));
        let pages: Vec<String> = https.iter().map(|h| metrics_page(h)).collect();
        let state_bytes: f64 = pages.iter().map(|t| metric_sum(t, "warden_state_bytes")).sum();
        let keys: f64 = pages.iter().map(|t| metric_sum(t, "warden_state_keys")).sum();
        println!("state keys={keys:.0} bytes={state_bytes:.0} bytes_per_key={:.0}", state_bytes / keys.max(1.0));
        drop(wardens);
        restore(&warden, &cfg, &bootstrap, &dir, state_bytes);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    if latency_secs == 0 {
        drop(wardens);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let out: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "latency")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for topic in ["warden.decisions", "warden.killswitch", "warden.alerts"] {
        tpl.add_partition_offset(topic, 0, Offset::End).expect("tpl");
    }
    out.assign(&tpl).expect("assign");
    std::thread::sleep(Duration::from_secs(1));
    let mut g = Generator::new(Profile { events: u64::MAX, ..Profile::mixed(1) }, 12);
    for fraction in fractions {
        let target = rate * fraction;
        let start = Instant::now();
        let mut sent = 0u64;
        let mut samples: Vec<f64> = Vec::new();
        let begin_ms = now_ms();
        let before = metrics_page(&http);
        // The broker's own hop, measured beside the phase under the same load.
        let (bootstrap, p) = (&bootstrap, &p);
        let hop = std::thread::scope(|scope| {
            let probe = scope.spawn(move || broker_hop(bootstrap, p, HOP_RATE, latency_secs));
            while start.elapsed() < Duration::from_secs(latency_secs) {
                let due = (start.elapsed().as_secs_f64() * target) as u64;
                while sent < due && g.next_into(&mut line) {
                    send(p, &with_ts(&line, now_ms()));
                    sent += 1;
                }
                while let Some(Ok(m)) = out.poll(Duration::from_millis(0)) {
                    record_sample(&m, begin_ms, &mut samples);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            // Outputs are timed when read: keep reading while the probe drains.
            while !probe.is_finished() {
                if let Some(Ok(m)) = out.poll(Duration::from_millis(10)) {
                    record_sample(&m, begin_ms, &mut samples);
                }
            }
            probe.join().unwrap_or_default()
        });
        let drain = Instant::now();
        while drain.elapsed() < Duration::from_secs(3) {
            if let Some(Ok(m)) = out.poll(Duration::from_millis(50)) {
                record_sample(&m, begin_ms, &mut samples);
            }
        }
        samples.sort_by(f64::total_cmp);
        // warden's view of this phase: the input hop (message timestamp to
        // arrival) and its own share (arrival to acknowledged output).
        let after = metrics_page(&http);
        let phase = |histogram: &str| quantiles(buckets_between(&before, &after, histogram));
        println!(
            "latency fraction={fraction} eps={target:.0} sent={sent} outputs={} e2e_p50_ms={:.1} e2e_p95_ms={:.1} e2e_p99_ms={:.1} | input hop {} | warden {} | broker_hop_under_load_p50_ms={:.1} p99_ms={:.1}",
            samples.len(),
            percentile(&samples, 0.50),
            percentile(&samples, 0.95),
            percentile(&samples, 0.99),
            phase("warden_input_delay_seconds"),
            phase("warden_process_latency_seconds"),
            percentile(&hop, 0.50),
            percentile(&hop, 0.99)
        );
    }
    println!(
        "warden_process_latency (all phases): {}",
        quantiles(buckets(&metrics_page(&http), "warden_process_latency_seconds"))
    );
    drop(wardens);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Restarts instance 0 on its state directory and reports how long restoring took:
/// wall time from start to `/ready`, and the per-partition restore times it logs.
fn restore(warden: &std::path::Path, cfg: &std::path::Path, bootstrap: &str, dir: &std::path::Path, state_bytes: f64) {
    let state = dir.join("state-0");
    let disk: u64 = walk_size(&state);
    let log = dir.join("restore.log");
    let http = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let w = Proc(
        Command::new(warden)
            .arg("run")
            .arg("--config")
            .arg(cfg)
            .args(["--brokers", bootstrap, "--group", "bench", "--http", &http, "--state"])
            .arg(&state)
            .env("WARDEN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("warden starts"),
    );
    while !http_get(&http, "/ready").contains(" 200 ") && started.elapsed() < Duration::from_secs(600) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64();
    drop(w);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let per_partition: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("state restored"))
        .filter_map(|l| l.split("seconds=").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    let gib = state_bytes / f64::from(1u32 << 30);
    let slowest = per_partition.iter().copied().fold(0.0, f64::max);
    println!(
        "restore state_bytes={state_bytes:.0} disk_bytes={disk} partitions={} wall_to_ready_s={wall:.2} slowest_partition_s={slowest:.2} sum_partitions_s={:.2} s_per_gib_state={:.1}",
        per_partition.len(),
        per_partition.iter().sum::<f64>(),
        per_partition.iter().sum::<f64>() / gib.max(1e-9)
    );
}

fn walk_size(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => walk_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Stamps per second the broker-hop probe sends beside a latency phase.
const HOP_RATE: f64 = 1000.0;

/// The broker's own latency: wall-clock stamps produced to `bench.echo` at `rate`
/// for `secs` and read back by a plain consumer (one hop; warden's path has two).
fn broker_hop(bootstrap: &str, p: &ThreadedProducer<DefaultProducerContext>, rate: f64, secs: u64) -> Vec<f64> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "echo")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("bench.echo", 0, Offset::End).expect("tpl");
    c.assign(&tpl).expect("assign");
    // A new consumer's first fetch comes after its metadata and offset lookups
    // (~0.5 s): stamps sent meanwhile would measure that, not the broker.
    if !reading(&c, p, "bench.echo") {
        eprintln!("broker hop: the echo consumer read nothing in 10 s");
        return Vec::new();
    }
    let begin = now_ms();
    let start = Instant::now();
    let (mut sent, mut out) = (0u64, Vec::new());
    let read = |c: &BaseConsumer, out: &mut Vec<f64>| {
        while let Some(Ok(m)) = c.poll(Duration::from_millis(0)) {
            let ts: Option<i64> = m.payload().and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            if let Some(ts) = ts.filter(|t| *t >= begin) {
                out.push((now_ms() - ts) as f64);
            }
        }
    };
    while start.elapsed() < Duration::from_secs(secs) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let stamp = now_ms().to_string();
            let mut rec = Some(BaseRecord::<str, str>::to("bench.echo").payload(&stamp));
            while let Some(r) = rec.take() {
                if let Err((_, back)) = p.send(r) {
                    std::thread::sleep(Duration::from_micros(200));
                    rec = Some(back);
                }
            }
            sent += 1;
        }
        read(&c, &mut out);
        std::thread::sleep(Duration::from_millis(1));
    }
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(3) {
        read(&c, &mut out);
        std::thread::sleep(Duration::from_millis(5));
    }
    out.sort_by(f64::total_cmp);
    out
}

/// Sends `warm-up` markers to `topic` until `c` reads one back (true), for at most 10 s.
fn reading(c: &BaseConsumer, p: &ThreadedProducer<DefaultProducerContext>, topic: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let _ = p.send(BaseRecord::<str, str>::to(topic).payload("warm-up"));
        let sent = Instant::now();
        while sent.elapsed() < Duration::from_millis(100) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(10)) {
                if m.payload() == Some(&b"warm-up"[..]) {
                    return true;
                }
            }
        }
    }
    false
}

fn record_sample(m: &rdkafka::message::BorrowedMessage<'_>, begin_ms: i64, samples: &mut Vec<f64>) {
    let Some(payload) = m.payload() else { return };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return;
    };
    let ts = v["event_ts"].as_i64().or_else(|| v["issued_at"].as_i64()).or_else(|| v["last_seen"].as_i64());
    // Only events this phase stamped with the wall clock (the pre-load is 2026 event time).
    if let Some(ts) = ts.filter(|t| *t >= begin_ms) {
        samples.push((now_ms() - ts) as f64);
    }
}

/// A histogram's buckets in a Prometheus page: (upper bound, cumulative count).
fn buckets(text: &str, histogram: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{histogram}_bucket");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets
}

/// A histogram's buckets counted between two pages of the same instance.
fn buckets_between(before: &str, after: &str, histogram: &str) -> Vec<(f64, f64)> {
    let before = buckets(before, histogram);
    buckets(after, histogram)
        .into_iter()
        .map(|(le, n)| (le, n - before.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1)))
        .collect()
}

/// p50 / p99 from latency buckets (their upper bounds).
fn quantiles(buckets: Vec<(f64, f64)>) -> String {
    let total = buckets.last().map_or(0.0, |b| b.1);
    let q = |p: f64| buckets.iter().find(|b| b.1 >= total * p).map_or(f64::NAN, |b| b.0 * 1000.0);
    format!("count={total} p50<={:.2}ms p99<={:.2}ms", q(0.5), q(0.99))
}
