//! The `pushwire` binary: parse the command line, load configuration, run.

use clap::Parser;

/// mimalloc keeps per-connection memory lower and less fragmented than the system allocator
/// under many small, long-lived allocations (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use pushwire_server::cli::{self, Cli, Command};
use pushwire_server::config::{self, LogFormat};
use pushwire_server::RunningServer;

fn main() {
    disable_transparent_huge_pages();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let loaded = config::load_with_warnings(args.config.as_deref(), &args.overrides())?;
            let config = loaded.config;
            init_logging(&config.log);
            for w in &loaded.warnings {
                tracing::warn!("configuration: {w}");
            }
            runtime()?.block_on(serve(config))
        }
        Command::Checkconfig(args) => match cli::checkconfig(&args)? {
            0 => Ok(()),
            code => std::process::exit(code),
        },
        Command::Genconfig { config, force } => cli::genconfig(&config, force),
        Command::Bench(args) => match runtime()?.block_on(pushwire_bench::execute(*args))? {
            0 => Ok(()),
            partial => std::process::exit(partial),
        },
        Command::Gentoken(args) => cli::gentoken::run(&args),
        Command::Sub(args) => runtime()?.block_on(cli::subscribe::run(args)),
        Command::Pub(args) => runtime()?.block_on(cli::publish::run(args)),
        Command::Version => {
            println!("pushwire {}", pushwire_core::node::VERSION);
            Ok(())
        }
    }
}

/// Transparent huge pages double the idle RSS of a node under mimalloc (67 → 133 MB in the
/// adversarial probe: a 2 MB page for every partly used arena) for no measurable gain in
/// fan-out, so they are off for the process unless `MIMALLOC_ALLOW_THP=1` asks for them
/// (docs/architecture.md, "Memory").
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none_or(|v| v != "1") {
        // The flag belongs to the process's address space; a failure (old kernel) leaves
        // THP as the system has it.
        let _ = rustix::thread::disable_transparent_huge_pages(true);
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

async fn serve(config: config::ServerConfig) -> anyhow::Result<()> {
    if config.http_api.insecure {
        tracing::warn!("http_api.insecure is on: the server API accepts calls without a key");
    }
    if config.client.insecure {
        tracing::warn!("client.insecure is on: every client gets every permission");
    }
    let server = RunningServer::start(config).await?;
    wait_for_signal().await;
    // A second signal during a (paced) graceful stop ends the process at once.
    let report = tokio::select! {
        report = server.shutdown() => report,
        () = wait_for_signal() => {
            tracing::warn!("second signal: exiting without waiting for the drain");
            std::process::exit(1);
        }
    };
    if !report.drained {
        tracing::warn!("shutdown timeout reached with connections still open");
    }
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("signal received, shutting down");
}

fn init_logging(log: &config::LogConfig) {
    let filter = tracing_subscriber::EnvFilter::new(&log.level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
