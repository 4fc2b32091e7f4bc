//! `warden run`: the streaming pipeline (design §2, §6, §7).
//!
//! # Layout
//! - [`consumer`]: the consumer thread — group membership, start offsets on
//!   assignment, draining on revocation, dispatch with per-partition backpressure.
//! - [`partition`]: one task per partition — engine, outputs, checkpoints, commits.
//! - [`client`]: librdkafka settings; [`embedded`]: the in-process mock cluster.
//! - [`telemetry`]: engine tallies → Prometheus metrics.
//!
//! Wiring here: the state store, the output producer, the HTTP endpoints, the lift
//! supervisor and signal handling (first SIGINT/SIGTERM drains and leaves the group;
//! a second exits at once).

pub mod client;
pub mod consumer;
pub mod embedded;
pub mod feed;
pub mod partition;
pub mod reload;
pub mod telemetry;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc as std_mpsc, Arc, RwLock};
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::mpsc;
use warden_detectors::state::rocks::RocksStore;
use warden_detectors::state::StateStore;
use warden_detectors::Engine;
use warden_schemas::Record;
use warden_sinks::http::{self, HttpState, LiftRequest};
use warden_sinks::kafka::{KafkaOutputs, OutputTopics};
use warden_sinks::metrics::Metrics;
use warden_sinks::registry::BlockRegistry;
use warden_sinks::sign::Signer;

use crate::config::Config;
use crate::secret::Secrets;
use consumer::{ConsumerCmd, TaskIndex, WardenContext};

/// How long a start waits for a broker to answer before giving up (exit 1).
const BROKER_STARTUP_WAIT: Duration = Duration::from_secs(30);

/// Command-line overrides of the config (design §7).
#[derive(Debug, Default)]
pub struct RunArgs {
    /// `--config`: re-read on every rule reload.
    pub config: Option<PathBuf>,
    /// `--brokers`.
    pub brokers: Option<String>,
    /// `--group`.
    pub group: Option<String>,
    /// `--state`.
    pub state: Option<PathBuf>,
    /// `--http` (parsed by the command line, so a bad one is a usage error).
    pub http: Option<SocketAddr>,
    /// `--load FILE...`: produce these events into the inputs once running.
    pub load: Vec<String>,
    /// `--tail`: print every output record to stdout.
    pub tail: bool,
}

/// Cadences and bounds of the pipeline.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Checkpoint at least this often.
    pub checkpoint_interval: Duration,
    /// ... or after this many events of a partition.
    pub checkpoint_events: u64,
    /// Revocation waits this long for a partition to drain (below the session timeout).
    pub drain_timeout: Duration,
    /// Bytes of messages buffered per partition between the consumer thread and its
    /// task (see [`feed`]).
    pub feed_bytes: usize,
    /// Label `distinct_visitors` by tenant (`metrics.tenant_labels`).
    pub tenant_labels: bool,
    /// `processing.guarantee = "exactly_once"`: per-partition Kafka transactions.
    pub exactly_once: bool,
    /// The consumer group (names transactional ids).
    pub group: String,
    /// Memory budget and tenant quota (`[state]`).
    pub state: crate::config::StateConfig,
}

/// What every part of the pipeline shares.
pub struct Shared {
    /// The engine and its generation (bumped by each reload).
    engine: RwLock<(u64, Arc<Engine>)>,
    /// Checkpoint store.
    pub store: Arc<RocksStore>,
    /// Output producer.
    pub outputs: Arc<KafkaOutputs>,
    /// Kill-switch signer.
    pub signer: Option<Signer>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Records in force.
    pub registry: Arc<BlockRegistry>,
    /// The runtime partition tasks run on.
    pub runtime: tokio::runtime::Handle,
    /// Cadences.
    pub settings: Settings,
    /// Requests to the consumer thread.
    pub consumer_cmds: std_mpsc::Sender<ConsumerCmd>,
    /// Rate-limited librdkafka logging.
    pub quiet_logs: warden_sinks::kafka::QuietLogs,
    /// Producer settings (exactly-once tasks make their own transactional producers).
    pub producer_config: ClientConfig,
    /// Settings of group-less readers (replay timestamps).
    pub reader_config: ClientConfig,
    /// The consumer's group metadata as of the last rebalance (exactly-once sends it
    /// with each transaction; an older generation's would be refused or ignored).
    pub group_metadata: std::sync::Mutex<Option<Arc<rdkafka::consumer::ConsumerGroupMetadata>>>,
    /// Instance-wide union of the partitions' visitor estimates.
    pub visitors: std::sync::Mutex<warden_detectors::engine::Visitors>,
    ready: Arc<AtomicBool>,
    assigned: AtomicUsize,
    restoring: AtomicUsize,
    bad_input_logs: DefaultDirectRateLimiter,
}

impl Shared {
    /// The current engine (rules can be swapped while running).
    pub fn engine(&self) -> Arc<Engine> {
        self.engine.read().unwrap_or_else(|e| e.into_inner()).1.clone()
    }

    /// The current engine with its generation; a partition task that holds an older
    /// generation migrates its state before its next event.
    pub fn engine_generation(&self) -> (u64, Arc<Engine>) {
        self.engine.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Swaps in a new engine (a rule reload); returns the new generation.
    pub fn replace_engine(&self, engine: Engine) -> u64 {
        let mut slot = self.engine.write().unwrap_or_else(|e| e.into_inner());
        *slot = (slot.0 + 1, Arc::new(engine));
        slot.0
    }

    fn update_ready(&self) {
        let ready = self.assigned.load(Ordering::SeqCst) > 0 && self.restoring.load(Ordering::SeqCst) == 0;
        self.ready.store(ready, Ordering::SeqCst);
        self.metrics.ready.set(i64::from(ready));
    }

    /// One partition's limits: an even share of the budget among those assigned.
    pub fn partition_limits(&self) -> warden_detectors::state::limits::Limits {
        self.settings.state.limits(self.assigned.load(Ordering::SeqCst))
    }

    /// A partition was assigned; its state is being restored.
    pub fn partition_started(&self) {
        self.assigned.fetch_add(1, Ordering::SeqCst);
        self.restoring.fetch_add(1, Ordering::SeqCst);
        self.update_ready();
    }

    /// A partition finished restoring.
    pub fn partition_restored(&self) {
        self.restoring.fetch_sub(1, Ordering::SeqCst);
        self.update_ready();
    }

    /// A partition was revoked.
    pub fn partition_stopped(&self) {
        self.assigned.fetch_sub(1, Ordering::SeqCst);
        self.update_ready();
    }

    /// Logs a dead letter, at most 10 lines a second; the rest are only counted.
    pub fn log_dead_letter(&self, partition: &str, offset: i64, reason: &str) {
        if self.bad_input_logs.check().is_ok() {
            tracing::warn!(partition, offset, reason, "input dead-lettered");
        } else {
            self.metrics.log_suppressed.inc();
        }
    }
}

/// Runs the pipeline until a signal stops it.
pub fn run(config: Config, secrets: Secrets, engine: Engine, signer: Option<Signer>, args: RunArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("warden").build()?;
    let mut embedded = None;
    let result = runtime.block_on(run_async(config, secrets, engine, signer, args, &mut embedded));
    // Every client, including those a spawned task still holds (reloads, lifts),
    // ends with the runtime; the embedded broker they talk to goes after them,
    // so a clean stop logs no "all brokers down" from clients still running.
    runtime.shutdown_timeout(Duration::from_secs(2));
    drop(embedded);
    if result.is_ok() {
        tracing::info!("stopped");
    }
    result
}

async fn run_async(
    config: Config,
    secrets: Secrets,
    engine: Engine,
    signer: Option<Signer>,
    args: RunArgs,
    embedded: &mut Option<embedded::Embedded>,
) -> Result<()> {
    let kafka = &config.kafka;
    // A file to load that cannot be read is a mistake in the command: say so before
    // anything starts, rather than log it later and run on with nothing loaded.
    for file in args.load.iter().filter(|f| f.as_str() != "-") {
        std::fs::File::open(file).with_context(|| format!("--load {file}"))?;
    }
    let http_addr: SocketAddr = match args.http {
        Some(addr) => addr,
        // Validated with the config, so this holds.
        None => config.http.addr.parse().map_err(|_| anyhow!("http.addr: not an address like 127.0.0.1:9464"))?,
    };
    // Bound first: a port in use is reported before anything starts, and the
    // embedded cluster's own port (the OS picks it) can never take this one.
    let http_listener = std::net::TcpListener::bind(http_addr)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .with_context(|| format!("cannot listen on {http_addr}"))?;
    let brokers = match args.brokers.clone().or_else(|| kafka.brokers.clone()) {
        Some(b) => b,
        None => {
            let e = embedded::Embedded::start(kafka).context("cannot start the embedded Kafka cluster")?;
            let bootstrap = e.bootstrap();
            // stderr: with `--tail`, stdout carries only output records.
            eprintln!(
                "warden: embedded Kafka cluster at {bootstrap} (in memory; topics {} in, {} {} {} {} out)",
                kafka.input_topics.join(" "),
                kafka.decisions_topic,
                kafka.killswitch_topic,
                kafka.alerts_topic,
                kafka.dlq_topic
            );
            *embedded = Some(e);
            bootstrap
        }
    };
    let group = args.group.clone().unwrap_or_else(|| kafka.group.clone());
    let state_dir =
        args.state.clone().or_else(|| config.state.dir.clone()).unwrap_or_else(|| PathBuf::from("warden-state"));
    let store = Arc::new(
        RocksStore::open(&state_dir).with_context(|| format!("cannot open the state store {}", state_dir.display()))?,
    );
    // The embedded cluster's checkpoints all go, so none is read for its keys first.
    if embedded.is_some() {
        drop_checkpoints_of_an_earlier_cluster(&store)?;
    } else {
        drop_foreign_checkpoints(&store)?;
    }

    let base = client::base(kafka, &brokers, &secrets);
    let topics = OutputTopics {
        decisions: kafka.decisions_topic.clone(),
        killswitch: kafka.killswitch_topic.clone(),
        alerts: kafka.alerts_topic.clone(),
        dlq: kafka.dlq_topic.clone(),
    };
    let metrics = Arc::new(Metrics::new());
    let quiet_logs = warden_sinks::kafka::QuietLogs::new(metrics.clone());
    let outputs = Arc::new(
        KafkaOutputs::new(client::producer(kafka, &brokers, &secrets), topics, quiet_logs.clone())
            .context("cannot create the producer")?,
    );
    telemetry::preregister(&metrics);
    let registry = Arc::new(BlockRegistry::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (cmd_tx, cmd_rx) = std_mpsc::channel();
    let settings = Settings {
        checkpoint_interval: Duration::from_millis(config.processing.checkpoint_interval_ms),
        checkpoint_events: config.processing.checkpoint_events,
        drain_timeout: Duration::from_secs(5),
        feed_bytes: feed::FEED_BYTES,
        tenant_labels: config.metrics.tenant_labels,
        exactly_once: config.processing.guarantee == "exactly_once",
        group: group.clone(),
        state: config.state.clone(),
    };
    let shared = Arc::new(Shared {
        engine: RwLock::new((0, Arc::new(engine))),
        store,
        outputs: outputs.clone(),
        signer,
        metrics: metrics.clone(),
        registry: registry.clone(),
        runtime: tokio::runtime::Handle::current(),
        settings,
        consumer_cmds: cmd_tx,
        producer_config: client::producer(kafka, &brokers, &secrets),
        reader_config: client::reader(kafka, &brokers, &secrets),
        quiet_logs,
        group_metadata: std::sync::Mutex::new(None),
        visitors: std::sync::Mutex::new(Default::default()),
        ready: ready.clone(),
        assigned: AtomicUsize::new(0),
        restoring: AtomicUsize::new(0),
        bad_input_logs: RateLimiter::direct(Quota::per_second(
            std::num::NonZeroU32::new(10).unwrap_or(std::num::NonZeroU32::MIN),
        )),
    });

    let (ctx, tasks) = WardenContext::new(shared.clone());
    let (lift_tx, lift_rx) = mpsc::channel(16);
    tokio::spawn(serve_lifts(lift_rx, registry.clone(), tasks));
    let admin = secrets.admin_token.as_ref().map(|t| t.expose().to_string());
    let (reload_tx, reload_rx) = mpsc::channel(4);
    let hmac = secrets.hmac_key.as_ref().map(|k| k.expose().as_bytes().to_vec());
    tokio::spawn(reload::serve(shared.clone(), config.clone(), args.config.clone(), hmac, reload_rx));
    let http_state =
        HttpState::new(metrics.clone(), registry.clone(), ready.clone(), admin, lift_tx, 50).with_reloads(reload_tx);
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let bound = serve_http(http_listener, http_state, http_stop_rx)
        .await
        .with_context(|| format!("cannot listen on {http_addr}"))?;
    // HTTP answers from here on: /health while Kafka is awaited, /ready once
    // partitions are assigned and restored.
    tracing::info!(%bound, group, state = %state_dir.display(), "warden is running");

    let consumer: BaseConsumer<WardenContext> = client::consumer(kafka, &brokers, &group, &secrets)
        .create_with_context(ctx)
        .context("cannot create the consumer")?;
    // Fail fast when no broker answers at all (exit 1); later outages are retried.
    let consumer =
        tokio::task::spawn_blocking(move || consumer.fetch_metadata(None, BROKER_STARTUP_WAIT).map(|_| consumer))
            .await?
            .map_err(|e| anyhow!("no Kafka broker answered at {brokers} within 30 s: {e}"))?;
    let input_topics: Vec<&str> = kafka.input_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&input_topics).context("cannot subscribe to the input topics")?;

    let stop = Arc::new(AtomicBool::new(false));
    let consumer_thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("warden-consumer".into())
            .spawn(move || consumer::run_loop(consumer, cmd_rx, stop))?
    };

    let mut helpers = Vec::new();
    if !args.load.is_empty() {
        let (client, kafka, files) = (base.clone(), kafka.clone(), args.load.clone());
        helpers.push(tokio::task::spawn_blocking(move || {
            match crate::kafka_tools::produce(client, &kafka, &files, None) {
                Ok(n) => tracing::info!(events = n, "loaded events into the input topics"),
                Err(e) => tracing::error!(error = %e, "loading events failed"),
            }
        }));
    }
    if args.tail {
        let client = client::reader(kafka, &brokers, &secrets);
        let outs = vec![
            kafka.decisions_topic.clone(),
            kafka.killswitch_topic.clone(),
            kafka.alerts_topic.clone(),
            kafka.dlq_topic.clone(),
        ];
        let stop = stop.clone();
        helpers.push(tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::kafka_tools::tail(client, &outs, None, stop) {
                tracing::error!(error = %e, "tail failed");
            }
        }));
    }

    wait_for_signal().await;
    tracing::info!("stopping: draining partitions, checkpointing, committing (a second signal exits at once)");
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("warden: second signal, exiting now");
        std::process::exit(130);
    });
    stop.store(true, Ordering::SeqCst);
    let joined = tokio::task::spawn_blocking(move || consumer_thread.join()).await;
    if !matches!(joined, Ok(Ok(()))) {
        tracing::error!("the consumer thread ended abnormally");
    }
    let flushed = tokio::task::spawn_blocking(move || outputs.flush(Duration::from_secs(10))).await;
    if !matches!(flushed, Ok(Ok(()))) {
        tracing::warn!("not every output was acknowledged before exit; they replay from the last commit");
    }
    let _ = http_stop_tx.send(());
    for h in helpers {
        // `tail` sees the stop flag within 100 ms; a load still running is abandoned.
        let _ = tokio::time::timeout(Duration::from_secs(2), h).await;
    }
    drop(shared);
    Ok(())
}

/// Serves HTTP on a thread and runtime of its own until `stop` fires, and says
/// where it listens.
///
/// Why apart: while input is queued, partition tasks keep the main runtime's
/// workers busy, and a scrape or a liveness probe queued behind them waited up
/// to 0.8 s under load (bench/RESULTS.md); an orchestrator that times a probe
/// out restarts a healthy, busy instance. One thread is plenty for the routes.
async fn serve_http(
    listener: std::net::TcpListener,
    state: HttpState,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> std::io::Result<SocketAddr> {
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new().name("warden-http".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = bound_tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            let shutdown = async move {
                let _ = stop.await;
            };
            match http::serve(listener, state, shutdown).await {
                Ok((bound, server)) => {
                    let _ = bound_tx.send(Ok(bound));
                    // The server is a task of this runtime: keep the runtime until
                    // it has stopped and answered what was in flight.
                    let _ = server.await;
                }
                Err(e) => {
                    let _ = bound_tx.send(Err(e));
                }
            }
        });
    })?;
    bound_rx.await.unwrap_or_else(|_| Err(std::io::Error::other("the HTTP thread ended before it listened")))
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Routes each lift to the partitions whose state holds records on the subject.
async fn serve_lifts(mut requests: mpsc::Receiver<LiftRequest>, registry: Arc<BlockRegistry>, tasks: TaskIndex) {
    while let Some(req) = requests.recv().await {
        let mut lifted: Vec<Record> = Vec::new();
        for partition in registry.partitions_of(&req.subject) {
            let Some(control) = tasks.control(&partition) else {
                continue;
            };
            let (reply, answer) = tokio::sync::oneshot::channel();
            if control.send(partition::Control::Lift { subject: req.subject.clone(), reply }).is_ok() {
                if let Ok(records) = answer.await {
                    lifted.extend(records);
                }
            }
        }
        let _ = req.reply.send(lifted);
    }
}

/// The embedded cluster lives in memory and is new on every run, so a checkpoint
/// in the state directory was taken against a log that no longer exists. Kept,
/// it would resume at its old position in a log that may hold other events at
/// those offsets (the quick start loaded twice would process nothing the second
/// time). A real cluster's partition is checked at assignment instead: a
/// checkpoint past its log end is dropped there.
fn drop_checkpoints_of_an_earlier_cluster(store: &RocksStore) -> Result<()> {
    let partitions = store.partitions().context("cannot list the stored partitions")?;
    if !partitions.is_empty() {
        tracing::warn!(
            partitions = partitions.len(),
            "the embedded cluster is new: dropping the checkpoints of an earlier run"
        );
    }
    for partition in partitions {
        store.drop_partition(&partition).with_context(|| format!("cannot drop the checkpoint of {partition}"))?;
    }
    Ok(())
}

/// Drops every checkpoint whose state keys this deployment would never look up
/// (an older warden's, or one written under another `WARDEN_HMAC_KEY`), so its
/// partition is assigned as one without local state: it rebuilds its state by
/// replaying up to 24 h of input below the committed offset.
fn drop_foreign_checkpoints(store: &RocksStore) -> Result<()> {
    for partition in store.partitions().context("cannot list the stored partitions")? {
        let Some(why) = warden_detectors::state::checkpoint::foreign_keys(store, &partition)
            .with_context(|| format!("cannot read the checkpoint of {partition}"))?
        else {
            continue;
        };
        tracing::warn!(
            partition,
            reason = why,
            "dropping a checkpoint this deployment cannot use; the partition rebuilds its state by replay"
        );
        store.drop_partition(&partition).with_context(|| format!("cannot drop the checkpoint of {partition}"))?;
    }
    Ok(())
}
