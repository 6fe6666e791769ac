//! The accept loops: hyper's HTTP/1 server under feedcast's limits, one edge per core.
//!
//! Each edge is a thread with a single-threaded runtime that accepts on its own descriptor of
//! the listening socket and serves its connections itself, as nginx's workers do; a
//! connection goes to the edge of the CPU its packets arrive on, unless that edge holds
//! markedly more than another (see [`Loads`]), so that a burst of connections neither leaves
//! cores idle nor makes each client wake two cores. The work a request starts beyond a
//! cached answer runs on the main runtime (see `observe`).
//! A connection must send its headers within the header-read timeout; one whose socket accepts
//! no byte of a pending response for the write timeout is closed (a client that pipelines
//! requests and never reads the answers would otherwise hold it forever); one client address
//! holds at most `max_connections_per_address` connections (trusted proxies exempt) and the
//! whole server at most `max_connections` (the rest wait in the listen backlog), counted
//! across the edges. Requests that hyper refuses before they reach the router (400, 414, 431)
//! are logged and counted like any other. On shutdown every edge closes its descriptor of the
//! listener at once and in-flight requests get `shutdown_timeout` to finish.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio_io_timeout::TimeoutStream;

use super::observe::{self, Edge};
use crate::app::App;
use crate::config::{HttpLimits, TrustedProxies};

/// Open connections per client address, for `max_connections_per_address`.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection counted against its address; uncounted when dropped.
struct Counted {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// Counts a connection from `ip`, or `None` if that address holds `limit` already.
    fn admit(table: &Arc<PerAddress>, ip: IpAddr, limit: usize) -> Option<Counted> {
        let mut open = table.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(ip).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Counted {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.table.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// What every edge shares: the service, the bounds on connections, and the runtime the
/// service's own work runs on.
#[derive(Clone)]
struct Shared {
    app: Arc<App>,
    router: Router,
    limits: HttpLimits,
    trusted: TrustedProxies,
    connections: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    /// Each edge's open connections.
    loads: Arc<Loads>,
    /// Where to hand each edge a connection another edge accepted.
    edges: Arc<[mpsc::UnboundedSender<Handed>]>,
    /// The runtime `run` was called on: the router's handlers run there, and whatever a
    /// feed's answer creates (store connections, timers, tasks, blocking work) belongs to it
    /// (see `observe::OnMain`).
    main: Handle,
}

/// Serves `app` (its feeds directly, the rest through `router`) on `listener` until
/// `shutdown` completes, then lets in-flight requests finish within `limits.shutdown_timeout`.
///
/// Connections are served by one edge per core: a thread with a single-threaded runtime that
/// accepts on its own copy of the listening socket and answers its connections' requests
/// itself, as nginx's workers do. On Tokio's work-stealing runtime, a request woke a parked
/// worker to steal it and its answer crossed cores; that was the largest cost left of a
/// cached feed (docs/BENCHMARKS.md). The router's handlers run on the runtime `run` was
/// called on, and what a feed's answer creates beyond a cache hit (store connections, timers,
/// blocking work) belongs to it.
pub(super) async fn run(
    listener: TcpListener,
    app: Arc<App>,
    router: Router,
    limits: HttpLimits,
    trusted: TrustedProxies,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let cores = crate::shard::cores();
    let (senders, mut receivers): (Vec<_>, Vec<_>) =
        (0..cores).map(|_| mpsc::unbounded_channel()).unzip();
    let shared = Shared {
        app,
        router,
        limits,
        trusted,
        connections: Arc::new(Semaphore::new(limits.max_connections)),
        per_address: Arc::new(PerAddress::default()),
        loads: Arc::new(Loads::new(cores)),
        edges: senders.into(),
        main: Handle::current(),
    };
    // One socket, one open file description: each edge registers its own descriptor of it,
    // and the kernel hands each connection to the edge that accepts it first. Unlike
    // SO_REUSEPORT, a second server on the same port still fails to bind.
    let listener = listener.into_std()?;
    let (stop, stopped) = watch::channel(false);
    let mut edges = FuturesUnordered::new();
    for (n, handed) in receivers.drain(..).enumerate() {
        // Made here rather than on the edge's thread, so that an edge that cannot start (out
        // of file descriptors) fails the start instead of leaving a port nobody answers.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _edge = runtime.enter();
            TcpListener::from_std(listener.try_clone()?)?
        };
        let (shared, stopped) = (shared.clone(), stopped.clone());
        let (done, finished) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("feedcast-edge-{n}"))
            .spawn(move || {
                let _ = done.send(runtime.block_on(accept(n, listener, shared, handed, stopped)));
            })?;
        edges.push(finished);
    }
    drop(listener);
    let ended = |finished: Result<std::io::Result<bool>, oneshot::error::RecvError>| {
        finished.unwrap_or_else(|_| Err(std::io::Error::other("an edge thread panicked")))
    };
    // An edge ends only when told to: one that ends before (a panic in its accept loop) ends
    // the service, so that it is restarted rather than left serving on fewer cores.
    let early = tokio::select! {
        () = shutdown => None,
        Some(finished) = edges.next() => Some(ended(finished)),
    };
    // Every edge stops accepting at once: the port closes when the last copy of the socket
    // does, so the load balancer sees it close.
    let _ = stop.send(true);
    tracing::info!("shutting down: finishing in-flight requests");
    let mut result = match early {
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => Err(std::io::Error::other("an edge stopped accepting")),
        None => Ok(()),
    };
    let mut all_closed = true;
    while let Some(finished) = edges.next().await {
        match ended(finished) {
            Ok(closed) => all_closed &= closed,
            Err(e) => result = Err(e),
        }
    }
    if all_closed {
        tracing::info!("all connections closed");
    } else {
        tracing::warn!(after = ?limits.shutdown_timeout, "shutdown timeout: dropped remaining connections");
    }
    result
}

/// A connection accepted by one edge and handed to another to serve, with what it holds.
struct Handed {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    held: Held,
}

/// What a connection holds while it is open: its place under `max_connections`, under its
/// address's limit (none for a trusted proxy's) and in its edge's count. Released when
/// dropped.
struct Held {
    _permit: OwnedSemaphorePermit,
    _counted: Option<Counted>,
    _open: Open,
}

/// The edges' open connections, each edge's count beside the others', so that a connection
/// is served by an edge near its packets without any edge holding much more than the others.
///
/// Each edge accepts on its own descriptor of the one listening socket, and whichever edge
/// the kernel wakes first takes every connection waiting. A burst of new connections (a proxy
/// or an aggregator opening its pool) could all land on one edge and leave the other cores
/// idle: measured with wrk's 32 connections on two edges, the split ranged from 32:0 to
/// 16:16 between rounds, and throughput with it from 56k to 158k requests a second. Spread
/// evenly, every round ran at about nginx's rate; spread by the CPU each connection's packets
/// arrive on (`SO_INCOMING_CPU`: the client's, over loopback; a NIC queue's interrupts, on a
/// network), each client's connections share one edge, which can then run beside them
/// without waking another core, and every round ran 15–40% above nginx (docs/BENCHMARKS.md).
/// So a connection goes to the edge of its CPU while that edge holds at most a quarter (and
/// one) more than the least loaded, and to the least loaded otherwise: all connections
/// arriving on one CPU (a single-queue NIC) still spread. The accepting edge hands it over
/// once per connection, never per request.
struct Loads {
    open: Vec<AtomicUsize>,
    gauges: Vec<metrics::Gauge>,
}

impl Loads {
    fn new(edges: usize) -> Self {
        Loads {
            open: (0..edges).map(|_| AtomicUsize::new(0)).collect(),
            gauges: (0..edges)
                .map(|edge| {
                    metrics::gauge!(crate::metrics::EDGE_CONNECTIONS, "edge" => edge.to_string())
                })
                .collect(),
        }
    }

    /// The edge that should serve a connection edge `me` accepted, whose packets arrive on CPU
    /// `incoming` (if known): that CPU's edge within the bound above, else the least loaded
    /// (`me` among equals). The connection is counted there at once, so that edges deciding
    /// at the same time see it.
    fn place(self: &Arc<Self>, me: usize, incoming: Option<usize>) -> Open {
        let (least, least_edge) = (0..self.open.len())
            .map(|edge| (self.open[edge].load(Ordering::Relaxed), edge != me, edge))
            .min()
            .map_or((0, me), |(open, _, edge)| (open, edge));
        let near = incoming.map_or(me, |cpu| cpu % self.open.len());
        let edge = if self.open[near].load(Ordering::Relaxed) <= least + 1 + least / 4 {
            near
        } else {
            least_edge
        };
        self.count(edge)
    }

    fn count(self: &Arc<Self>, edge: usize) -> Open {
        self.open[edge].fetch_add(1, Ordering::Relaxed);
        // Added, not set: edges counting into one gauge at once would set it out of order.
        self.gauges[edge].increment(1.0);
        Open {
            loads: self.clone(),
            edge,
        }
    }
}

/// One connection counted in its edge's load; uncounted when dropped.
struct Open {
    loads: Arc<Loads>,
    edge: usize,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.loads.open[self.edge].fetch_sub(1, Ordering::Relaxed);
        self.loads.gauges[self.edge].decrement(1.0);
    }
}

/// One edge: accepts connections on `listener` and serves them, and those other edges hand
/// it, on this thread's runtime until `stopped` turns true, then lets its in-flight requests
/// finish within the shutdown timeout: whether they all did. If `run` was dropped instead
/// (the sender with it), its connections are dropped at once: nothing waits for them.
async fn accept(
    me: usize,
    listener: TcpListener,
    shared: Shared,
    mut handed: mpsc::UnboundedReceiver<Handed>,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<bool> {
    let limits = shared.limits;
    let graceful = GracefulShutdown::new();
    let stop = stopped.wait_for(|stop| *stop);
    let mut stop = std::pin::pin!(stop);
    let mut permit = None;
    // Whether the stop was a shutdown (`true`) or `run` dropped (`false`).
    let told = loop {
        let (stream, peer) = tokio::select! {
            biased;
            told = &mut stop => break told.is_ok(),
            Some(handed) = handed.recv() => {
                serve_handed(handed, &shared, &graceful);
                continue;
            }
            acquired = shared.connections.clone().acquire_owned(), if permit.is_none() => {
                match acquired {
                    Ok(acquired) => permit = Some(acquired),
                    Err(_) => break true,
                }
                continue;
            }
            accepted = listener.accept(), if permit.is_some() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pass, and let the backlog wait.
                    tracing::warn!(cause = %e, "accept failed");
                    permit = None;
                    tokio::select! {
                        biased;
                        told = &mut stop => break told.is_ok(),
                        () = tokio::time::sleep(std::time::Duration::from_millis(50)) => continue,
                    }
                }
            },
        };
        let Some(permit) = permit.take() else {
            continue;
        };
        let ip = peer.ip().to_canonical();
        // Every client behind a trusted proxy shares its address: the proxy is not limited.
        let counted = if shared.trusted.contains(ip) {
            None
        } else {
            let key = super::client::limit_key(ip);
            match PerAddress::admit(&shared.per_address, key, limits.max_connections_per_address) {
                Some(counted) => Some(counted),
                None => {
                    observe::connection_refused(ip, "per_address");
                    continue;
                }
            }
        };
        // Unknown (an old kernel, another system) places by load alone.
        let incoming = rustix::net::sockopt::socket_incoming_cpu(&stream)
            .ok()
            .and_then(|cpu| usize::try_from(cpu).ok());
        let open = shared.loads.place(me, incoming);
        let edge = open.edge;
        let held = Held {
            _permit: permit,
            _counted: counted,
            _open: open,
        };
        if edge == me {
            serve(stream, peer, held, &shared, &graceful);
            continue;
        }
        let handed = stream
            .into_std()
            .map(|stream| Handed { stream, peer, held });
        match handed {
            Ok(handed) => {
                if let Err(mpsc::error::SendError(mut handed)) = shared.edges[edge].send(handed) {
                    // That edge has stopped: this one serves it after all.
                    handed.held._open = shared.loads.count(me);
                    serve_handed(handed, &shared, &graceful);
                }
            }
            Err(e) => tracing::warn!(cause = %e, "an accepted connection could not be handed on"),
        }
    };
    drop(listener);
    if !told {
        return Ok(false);
    }
    // Connections handed here before the stop was seen were accepted: they are answered like
    // this edge's own, not dropped with the channel.
    handed.close();
    while let Ok(handed) = handed.try_recv() {
        serve_handed(handed, &shared, &graceful);
    }
    tokio::select! {
        () = graceful.shutdown() => Ok(true),
        () = tokio::time::sleep(limits.shutdown_timeout) => Ok(false),
    }
}

/// Serves a connection another edge accepted, registered with this edge's runtime as if
/// accepted here.
fn serve_handed(handed: Handed, shared: &Shared, graceful: &GracefulShutdown) {
    let Handed { stream, peer, held } = handed;
    match tokio::net::TcpStream::from_std(stream) {
        Ok(stream) => serve(stream, peer, held, shared, graceful),
        Err(e) => tracing::warn!(cause = %e, "a handed connection could not be served"),
    }
}

/// Serves one connection on this edge's runtime, under the write timeout, until it closes.
fn serve(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    held: Held,
    shared: &Shared,
    graceful: &GracefulShutdown,
) {
    let limits = shared.limits;
    let _ = stream.set_nodelay(true);
    let mut io = TimeoutStream::new(stream);
    io.set_write_timeout(Some(limits.write_timeout));
    let edge = Arc::new(Edge {
        app: shared.app.clone(),
        router: shared.router.clone(),
        main: shared.main.clone(),
        peer,
    });
    // The connection's own handle to the app and router: a request clones it, not the
    // handles every connection shares (whose counts would bounce between cores).
    let service = service_fn(move |request| {
        let edge = edge.clone();
        async move { Ok::<_, Infallible>(observe::answer(&edge, request).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(Box::pin(io)), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            ended_with(&e, peer);
        }
        drop(held);
    });
}

/// Says how a connection that hyper ended with an error ended: a request hyper refused is
/// logged and counted as a request; a client that stopped reading, as a write timeout.
fn ended_with(e: &hyper::Error, peer: SocketAddr) {
    if let Some(status) = refused_status(e) {
        observe::refused_by_hyper(peer.ip().to_canonical(), status);
        return;
    }
    let timed_out = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if timed_out {
        observe::connection_refused(peer.ip().to_canonical(), "write_timeout");
    } else {
        tracing::debug!(cause = %e, "connection ended with an error");
    }
}

/// The status hyper answered a request it could not parse with (see hyper's `on_error`):
/// 431 for a head over its buffer, 414 for a URI over its bound, 400 for the rest.
fn refused_status(e: &hyper::Error) -> Option<u16> {
    if !e.is_parse() || e.is_parse_version_h2() {
        return None;
    }
    Some(if e.is_parse_too_large() {
        // hyper has no predicate for the two causes it folds together; its message tells them
        // apart ("URI too long" against "message head is too large").
        if e.to_string().contains("URI") {
            414
        } else {
            431
        }
    } else {
        400
    })
}
