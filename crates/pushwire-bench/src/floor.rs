//! `pushwire bench floor`: what the kernel alone charges for a fan-out round, with no server.
//!
//! N loopback TCP connections go from a writing thread to a sink thread of this process. The
//! sink is a Tokio current-thread runtime on its own thread, one task per connection reading
//! into a buffer and counting the bytes: it stands where the bench's subscribers stand, on the
//! other core. The writer is a plain thread that does what the server's fan-out does at its
//! simplest: one round writes one frame to every connection in turn, each a blocking `write`
//! that on loopback runs the receiver's TCP input too. A round's time is the floor under a
//! fan-out's last delivery: compare its p99 with the fan-out's p99 in the same run.
//!
//! The batched variant submits the round as io_uring `send` entries, as many per
//! `io_uring_enter` as the submission queue holds (4,096), and waits for their completions:
//! the kernel still runs every send's TCP path, but one system call carries thousands.
//!
//! Rounds start on a fixed tick (`--rate` per second; a late round starts at once), methods
//! interleaved round by round so that a busy machine disturbs both alike. With `--writer-cpu`
//! and `--sink-cpu` each thread pins itself (`sched_setaffinity`) as the scripts pin the server
//! and the bench.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pushwire_protocol::{encode_reply, Protocol, Publication, Push, RawJson, Reply};
use tokio::io::AsyncReadExt;

use crate::args::BenchArgs;
use crate::error::BenchError;
use crate::report::{ratio, BenchReport, Floor, FloorRounds, Latency, Machine, Params};
use crate::stats::new_histogram;
use crate::{limits, machine};

/// How long the sink may take to read what was written, after the last round.
const DRAIN_WAIT: Duration = Duration::from_secs(10);
/// Submission queue entries of the io_uring (a round of more connections takes several
/// submissions).
const RING_ENTRIES: u32 = 4096;
/// Read buffer of each sink task.
const SINK_BUF: usize = 2048;

/// Runs the floor scenario and reports it.
pub(crate) async fn run(args: BenchArgs, mut params: Params) -> Result<BenchReport, BenchError> {
    params.url = "an in-process loopback sink (no server)".into();
    limits::check_open_files(2 * u64::from(args.connections))?;
    let machine = Machine {
        cpus: machine::cpus(),
        load_avg_start: machine::load_avg(),
        load_avg_end: None,
    };
    let mut report = BenchReport::new(args.scenario, params, machine);
    let frame = frame(&args).map_err(BenchError::Setup)?;
    let outcome = tokio::task::spawn_blocking(move || measure(&args, frame))
        .await
        .map_err(|e| BenchError::Setup(format!("floor run panicked: {e}")))?
        .map_err(BenchError::Setup)?;
    report.connections.requested = outcome.connections;
    report.connections.established = outcome.connections;
    report.connections.secs = outcome.connect_secs;
    report.connections.per_sec = ratio(outcome.connections as f64, outcome.connect_secs);
    report.floor = Some(outcome.floor);
    report.machine.load_avg_end = machine::load_avg();
    report.conclude();
    Ok(report)
}

/// The bytes the server writes to one subscriber for one fan-out publication: a WebSocket
/// text frame (server to client, unmasked) around the JSON push of a `--payload-bytes` data
/// object on `--channel`.
fn frame(args: &BenchArgs) -> Result<Vec<u8>, String> {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let data = crate::publisher::padded_data(ts, 1, args.payload_bytes);
    let push = Push {
        channel: args.channel.clone(),
        publication: Some(Publication {
            data: RawJson::from_json_str(&data).map_err(|e| e.to_string())?,
            ..Default::default()
        }),
        ..Default::default()
    };
    let body = encode_reply(Protocol::Json, &Reply::push(push)).map_err(|e| e.to_string())?;
    Ok(ws_frame(&body))
}

/// `body` as one unmasked WebSocket text frame.
fn ws_frame(body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(body.len() + 10);
    f.push(0x81);
    match body.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= 0xffff => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(body);
    f
}

struct Outcome {
    connections: u64,
    connect_secs: f64,
    floor: Floor,
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: Option<usize>) -> Result<(), String> {
    let Some(cpu) = cpu else { return Ok(()) };
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).map_err(|e| format!("pin to CPU {cpu}: {e}"))
}

/// Opens the connections, runs the rounds, closes and waits for the sink. Blocking.
fn measure(args: &BenchArgs, frame: Vec<u8>) -> Result<Outcome, String> {
    let n = args.connections as usize;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let received = Arc::new(AtomicU64::new(0));
    let sink = {
        let received = received.clone();
        let cpu = args.sink_cpu;
        std::thread::Builder::new()
            .name("floor-sink".into())
            .spawn(move || sink(listener, n, cpu, received))
            .map_err(|e| format!("sink thread: {e}"))?
    };
    let writer = {
        let args = args.clone();
        std::thread::Builder::new()
            .name("floor-writer".into())
            .spawn(move || write_rounds(&args, addr, &frame))
            .map_err(|e| format!("writer thread: {e}"))?
    };
    let written = writer
        .join()
        .map_err(|_| "writer thread panicked".to_string())?;
    // The writer closed its ends: every sink task sees end of stream once it has read all.
    let sink_result = sink
        .join()
        .map_err(|_| "sink thread panicked".to_string())?;
    let mut w = written?;
    sink_result?;
    w.floor.bytes_received = received.load(Ordering::Relaxed);
    Ok(w)
}

/// The sink: accepts `n` connections and reads each to its end on a current-thread runtime.
fn sink(
    listener: TcpListener,
    n: usize,
    cpu: Option<usize>,
    received: Arc<AtomicU64>,
) -> Result<(), String> {
    pin(cpu)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("sink runtime: {e}"))?;
    rt.block_on(async move {
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| e.to_string())?;
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let (mut s, _) = listener
                .accept()
                .await
                .map_err(|e| format!("accept: {e}"))?;
            let received = received.clone();
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; SINK_BUF];
                while let Ok(k) = s.read(&mut buf).await {
                    if k == 0 {
                        break;
                    }
                    received.fetch_add(k as u64, Ordering::Relaxed);
                }
            }));
        }
        let all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        tokio::time::timeout(DRAIN_WAIT + Duration::from_secs(60), all)
            .await
            .map_err(|_| "sink: connections still open after the run".to_string())
    })
}

/// The writing thread: connects, then runs the rounds.
fn write_rounds(args: &BenchArgs, addr: SocketAddr, frame: &[u8]) -> Result<Outcome, String> {
    pin(args.writer_cpu)?;
    let n = args.connections as usize;
    let start = Instant::now();
    let mut streams = Vec::with_capacity(n);
    for _ in 0..n {
        let s = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        streams.push(s);
    }
    let connect_secs = start.elapsed().as_secs_f64();

    let mut ring = if args.no_batched {
        Err("--no-batched".to_string())
    } else {
        uring::Ring::new(RING_ENTRIES)
    };
    let rounds = u64::from(args.rate) * args.duration;
    let mut seq = Rounds::new("write");
    let mut batched = Rounds::new("io_uring");
    let mut written = 0u64;
    // Warm-up: one round each, not measured (first writes grow socket buffers).
    written += write_round(&streams, frame, &mut seq.errors);
    if let Ok(r) = &mut ring {
        match r.send_round(&streams, frame) {
            Ok(errors) => {
                batched.errors += errors;
                written += n as u64;
            }
            Err(e) => ring = Err(e),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    seq.errors = 0;
    batched.errors = 0;

    let tick = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut next = Instant::now();
    for _ in 0..rounds {
        for batch in [false, true] {
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next = Instant::now().max(next) + tick;
            if !batch {
                let t = Instant::now();
                written += write_round(&streams, frame, &mut seq.errors);
                seq.record(t.elapsed());
            } else if let Ok(r) = &mut ring {
                let t = Instant::now();
                match r.send_round(&streams, frame) {
                    Ok(errors) => {
                        batched.record(t.elapsed());
                        batched.errors += errors;
                        written += n as u64;
                    }
                    Err(e) => ring = Err(e),
                }
            }
        }
    }
    let expected = written * frame.len() as u64;
    drop(streams);
    let (batched, batched_error) = match ring {
        Ok(_) => (Some(batched.finish(n)), None),
        Err(e) if args.no_batched => (None, Some(e)),
        Err(e) => (
            (batched.rounds > 0).then(|| batched.finish(n)),
            Some(format!("io_uring: {e}")),
        ),
    };
    Ok(Outcome {
        connections: n as u64,
        connect_secs,
        floor: Floor {
            frame_bytes: frame.len(),
            sink: "in-process: one thread running a Tokio current-thread runtime, one reading \
                   task per connection"
                .into(),
            writer_cpu: args.writer_cpu,
            sink_cpu: args.sink_cpu,
            bytes_expected: expected,
            bytes_received: 0,
            sequential: seq.finish(n),
            batched,
            batched_error,
        },
    })
}

/// One round of plain writes; returns the frames written, counts failures in `errors`.
fn write_round(streams: &[TcpStream], frame: &[u8], errors: &mut u64) -> u64 {
    let mut ok = 0;
    for mut s in streams {
        match s.write_all(frame) {
            Ok(()) => ok += 1,
            Err(_) => *errors += 1,
        }
    }
    ok
}

/// Round times of one method.
struct Rounds {
    method: &'static str,
    histogram: hdrhistogram::Histogram<u64>,
    rounds: u64,
    errors: u64,
}

impl Rounds {
    fn new(method: &'static str) -> Rounds {
        Rounds {
            method,
            histogram: new_histogram(),
            rounds: 0,
            errors: 0,
        }
    }

    fn record(&mut self, d: Duration) {
        self.rounds += 1;
        let _ = self.histogram.record((d.as_micros() as u64).max(1));
    }

    fn finish(self, n: usize) -> FloorRounds {
        let round = Latency::from_histogram(&self.histogram);
        FloorRounds {
            method: self.method.into(),
            rounds: self.rounds,
            errors: self.errors,
            us_per_write_p50: ratio(round.p50_us as f64, n as f64),
            us_per_write_p99: ratio(round.p99_us as f64, n as f64),
            round,
        }
    }
}

/// The batched submission: io_uring `send` entries, one per connection.
// io_uring submission needs `unsafe` (the buffers must outlive the kernel's use): kept to
// this one function.
#[allow(unsafe_code)]
mod uring {
    use std::net::TcpStream;
    use std::os::fd::AsRawFd;

    use io_uring::{opcode, types, IoUring};

    pub(super) struct Ring {
        ring: IoUring,
        entries: usize,
    }

    impl Ring {
        pub(super) fn new(entries: u32) -> Result<Ring, String> {
            let ring = IoUring::new(entries).map_err(|e| format!("io_uring_setup: {e}"))?;
            Ok(Ring {
                ring,
                entries: entries as usize,
            })
        }

        /// Sends `frame` once on every stream: as many entries per submission as the queue
        /// holds, each submission waited for before the next. Returns the sends that failed
        /// or were short; `Err` when the ring itself failed.
        pub(super) fn send_round(
            &mut self,
            streams: &[TcpStream],
            frame: &[u8],
        ) -> Result<u64, String> {
            let mut errors = 0;
            for chunk in streams.chunks(self.entries) {
                {
                    let mut sq = self.ring.submission();
                    for (i, s) in chunk.iter().enumerate() {
                        let entry = opcode::Send::new(
                            types::Fd(s.as_raw_fd()),
                            frame.as_ptr(),
                            frame.len() as u32,
                        )
                        .build()
                        .user_data(i as u64);
                        // SAFETY: `frame` and the streams' descriptors outlive the entry: this
                        // function waits below for every completion of the chunk before it
                        // returns or reuses the queue.
                        unsafe { sq.push(&entry) }
                            .map_err(|_| "submission queue full".to_string())?;
                    }
                }
                self.ring
                    .submit_and_wait(chunk.len())
                    .map_err(|e| format!("io_uring_enter: {e}"))?;
                let mut done = 0;
                while done < chunk.len() {
                    let cq = self.ring.completion();
                    for cqe in cq {
                        done += 1;
                        if cqe.result() != frame.len() as i32 {
                            errors += 1;
                        }
                    }
                    if done < chunk.len() {
                        self.ring
                            .submit_and_wait(chunk.len() - done)
                            .map_err(|e| format!("io_uring_enter: {e}"))?;
                    }
                }
            }
            Ok(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn args(extra: &[&str]) -> BenchArgs {
        let base = ["bench", "floor"];
        Cli::parse_from(base.iter().chain(extra.iter()).copied()).bench
    }

    #[test]
    fn frame_is_the_push_the_server_writes() {
        let f = frame(&args(&["--payload-bytes", "64", "--channel", "bench"])).unwrap();
        assert_eq!(f[0], 0x81);
        assert_eq!(f[1] as usize, f.len() - 2);
        let v: serde_json::Value = serde_json::from_slice(&f[2..]).unwrap();
        assert_eq!(v["push"]["channel"], "bench");
        let data = serde_json::to_string(&v["push"]["pub"]["data"]).unwrap();
        assert_eq!(data.len(), 64);
        let big = ws_frame(&[b'x'; 300]);
        assert_eq!((big[1], big.len()), (126, 304));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn floor_rounds_reach_the_sink() {
        let a = args(&["--connections", "20", "--rate", "200", "--duration", "1"]);
        let params = crate::run::params_of(&a);
        let r = run(a, params).await.unwrap();
        let f = r.floor.as_ref().unwrap();
        assert_eq!(f.sequential.rounds, 200);
        assert_eq!(f.bytes_received, f.bytes_expected, "{:?}", r.problems);
        assert!(f.sequential.round.p50_us > 0);
        match &f.batched {
            Some(b) => assert_eq!((b.rounds, b.errors), (200, 0)),
            None => assert!(f.batched_error.is_some()),
        }
        assert!(r.complete, "{:?}", r.problems);
    }
}
