//! Criterion benchmarks: decoding, the sliding window against a naive baseline, and
//! the engine per event type and on the mixed stream. Inputs come from the seeded
//! generator, so every run measures the same events.
//!
//! `cargo bench -p warden-bench --bench engine`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use warden_bench::gen::{Generator, Profile};
use warden_detectors::rules::Rules;
use warden_detectors::window::SlidingWindow;
use warden_detectors::{Engine, Tally};
use warden_schemas::decode;
use warden_schemas::{Event, Provenance};

const N: usize = 50_000;

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
    for (name, filter) in [
        ("webhook", Some("\"webhook\"")),
        ("tool_call", Some("\"tool_call\"")),
        ("log", Some("\"log\"")),
        ("mixed", None),
    ] {
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
                    tally
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_decode, bench_window, bench_engine);
criterion_main!(benches);
