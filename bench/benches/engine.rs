//! Criterion benchmarks: decoding, the sliding window against a naive baseline, the
//! engine per event type and on the mixed stream, and pathological events by size. Inputs come from the seeded
//! generator, so every run measures the same events.
//!
//! `cargo bench -p warden-bench --bench engine`

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use warden_bench::gen::{Generator, Profile};
use warden_detectors::rules::Rules;
use warden_detectors::window::SlidingWindow;
use warden_detectors::{Engine, Tally};
use warden_schemas::decode;
use warden_schemas::{Event, Provenance};

const N: usize = 50_000;

/// Each engine group's benchmarks: a name, and the text its events' lines hold
/// (`None`: the mixed stream).
const EVENT_TYPES: [(&str, Option<&str>); 4] =
    [("webhook", Some("\"webhook\"")), ("tool_call", Some("\"tool_call\"")), ("log", Some("\"log\"")), ("mixed", None)];

fn lines(filter: Option<&str>) -> Vec<String> {
    let mut g = Generator::new(Profile::mixed(N as u64 * 4), 42);
    let mut out = Vec::with_capacity(N);
    let mut line = String::new();
    while out.len() < N && g.next_into(&mut line) {
        if filter.is_none_or(|f| line.contains(f)) {
            out.push(line.clone());
        }
    }
    out
}

fn bench_decode(c: &mut Criterion) {
    let input = lines(None);
    let mut g = c.benchmark_group("schemas::decode");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.bench_function("mixed", |b| {
        b.iter(|| {
            let mut ok = 0usize;
            for l in &input {
                let v = decode::parse(l).expect("valid");
                ok += usize::from(Event::from_value(&v).is_ok());
            }
            assert_eq!(ok, input.len());
        })
    });
    g.finish();
}

fn bench_window(c: &mut Criterion) {
    let mut g = c.benchmark_group("detectors::window::sliding");
    let ts: Vec<i64> = (0..10_000).map(|i| i * 250).collect();
    g.throughput(Throughput::Elements(ts.len() as u64));
    g.bench_function("kept_n_largest", |b| {
        b.iter(|| {
            let mut w = SlidingWindow::default();
            let over = ts.iter().filter(|&&t| w.observe(t, 30, 60_000) > 30).count();
            assert!(over > 0);
        })
    });
    // Naive baseline: keep every timestamp and count the window by scanning.
    g.bench_function("naive_all_timestamps", |b| {
        b.iter(|| {
            let mut all: Vec<i64> = Vec::new();
            let over = ts
                .iter()
                .filter(|&&t| {
                    let count = 1 + all.iter().filter(|&&x| x > t - 60_000 && x <= t).count();
                    all.push(t);
                    count > 30
                })
                .count();
            assert!(over > 0);
        })
    });
    g.finish();
}

fn bench_engine(c: &mut Criterion) {
    let engine = Engine::new(Rules::defaults(), Some(b"bench-key".to_vec()));
    let source = Provenance::File { file: "bench".into(), line: 1 };
    let mut g = c.benchmark_group("detectors::engine");
    for (name, filter) in EVENT_TYPES {
        let input = lines(filter);
        let values: Vec<_> = input.iter().map(|l| decode::parse(l).expect("valid")).collect();
        g.throughput(Throughput::Elements(values.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || engine.new_state(),
                |mut state| {
                    let (mut out, mut tally) = (Vec::new(), Tally::default());
                    for v in &values {
                        let ev = Event::from_value(v).expect("valid");
                        engine.handle(&ev, &source, &mut state, &mut out, &mut tally);
                        out.clear();
                    }
                    // Returned, so criterion drops the state after the clock stops:
                    // freeing a partition's maps happens once in its life, not per event.
                    (state, tally)
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// Events a consumer batch at a time: each chunk of [`CHUNK`] lines is parsed just
/// before the engine sees it, as `warden scan` and `warden run` parse each input
/// right before handling it, and only the engine's time is counted (reading the
/// event out of the parsed JSON, `Event::from_value`, included, as above). The
/// `detectors::engine` group above parses all 50,000 events first, so every
/// event it hands the engine was parsed ~50 MB of memory ago and is read cold:
/// a cost production does not pay. Both stay, so figures compare across sessions.
fn bench_engine_fresh(c: &mut Criterion) {
    const CHUNK: usize = 256;
    let engine = Engine::new(Rules::defaults(), Some(b"bench-key".to_vec()));
    let source = Provenance::File { file: "bench".into(), line: 1 };
    let mut g = c.benchmark_group("detectors::engine_fresh");
    for (name, filter) in EVENT_TYPES {
        let input = lines(filter);
        g.throughput(Throughput::Elements(input.len() as u64));
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut engine_time = Duration::ZERO;
                for _ in 0..iters {
                    let mut state = engine.new_state();
                    let (mut out, mut tally) = (Vec::new(), Tally::default());
                    for chunk in input.chunks(CHUNK) {
                        let values: Vec<_> = chunk.iter().map(|l| decode::parse(l).expect("valid")).collect();
                        let start = Instant::now();
                        for v in &values {
                            let ev = Event::from_value(v).expect("valid");
                            engine.handle(&ev, &source, &mut state, &mut out, &mut tally);
                            out.clear();
                        }
                        engine_time += start.elapsed();
                    }
                    std::hint::black_box((&state, &tally));
                }
                engine_time
            })
        });
    }
    g.finish();
}

/// Pathological events at two sizes: if the cost per byte stays flat from 1 KiB to
/// 256 KiB, no event can stall a partition beyond its size limit's worth of work.
fn hostile_event(kind: &str, size: usize) -> String {
    let fill = |unit: &str| {
        let mut s = unit.repeat(size / unit.len() + 1);
        while s.len() > size {
            s.pop();
        }
        s
    };
    match kind {
        // Near-misses of the injection pattern: a verb, object words, never the noun.
        "near_miss_text" => format!(
            r#"{{"type":"webhook","ts":1767225600000,"tenant":"t","source":"s","visitor":"v","text":"{}"}}"#,
            fill("ignore all the previous ")
        ),
        // Digit runs that look like cards and SSNs but fail Luhn and the groups.
        "digit_runs" => format!(
            r#"{{"type":"log","ts":1767225600000,"service":"s","level":"info","message":"{}"}}"#,
            fill("4111 1111 1111 1112 000-12-3456 ")
        ),
        // Connection-string near-misses: open braces and quotes that never close
        // (each once read the rest of the line at every match: quadratic).
        "open_quotes" => format!(
            r#"{{"type":"log","ts":1767225600000,"service":"s","level":"info","message":"{}"}}"#,
            fill("Server=x;Pwd={a;jdbc:x://h?password={ host=a pwd=' Password='a;")
        ),
        // Zero-width and full-width characters that normalisation rewrites.
        "unicode_rewrite" => format!(
            r#"{{"type":"webhook","ts":1767225600000,"tenant":"t","source":"s","visitor":"v","text":"{}"}}"#,
            fill("\u{ff29}\u{200b}e\u{0301}a ")
        ),
        // A flat `args` object with many keys (canonical hashing sorts them).
        _ => {
            let keys: Vec<String> = (0..size / 12).map(|i| format!(r#""k{i:07}":{i}"#)).collect();
            format!(
                r#"{{"type":"tool_call","ts":1767225600000,"tenant":"t","session":"s","tool":"x","args":{{{}}}}}"#,
                keys.join(",")
            )
        }
    }
}

fn bench_hostile(c: &mut Criterion) {
    let engine = Engine::new(Rules::defaults(), Some(b"bench-key".to_vec()));
    let source = Provenance::File { file: "bench".into(), line: 1 };
    let mut g = c.benchmark_group("detectors::engine::hostile");
    g.sample_size(20);
    for kind in ["near_miss_text", "digit_runs", "open_quotes", "unicode_rewrite", "giant_args"] {
        for size in [1 << 10, 256 << 10] {
            let event = hostile_event(kind, size);
            g.throughput(Throughput::Bytes(event.len() as u64));
            g.bench_function(format!("{kind}/{}KiB", size >> 10), |b| {
                let mut state = engine.new_state();
                let (mut out, mut tally) = (Vec::new(), Tally::default());
                b.iter(|| {
                    engine.handle_bytes(event.as_bytes(), &source, &mut state, &mut out, &mut tally);
                    out.clear();
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_window, bench_engine, bench_engine_fresh, bench_hostile);
criterion_main!(benches);
