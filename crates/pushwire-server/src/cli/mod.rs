//! The command line: `serve`, `checkconfig`, `genconfig`, `bench`, `version`, and the client
//! subcommands in their own files: [`gentoken`], [`subscribe`] (`sub`), [`publish`] (`pub`).

pub mod gentoken;
pub mod publish;
pub mod subscribe;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::{self, Overrides, STARTER_CONFIG};

/// pushwire: a real-time push server speaking the Centrifugo client protocol v2.
#[derive(Debug, Parser)]
#[command(name = "pushwire", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node.
    Serve(ServeArgs),
    /// Validate a configuration file (and the environment) and exit (0 when valid).
    Checkconfig(CheckconfigArgs),
    /// Write a commented starter configuration.
    Genconfig {
        /// Where to write it; `-` for standard output.
        #[arg(short, long, default_value = "config.toml")]
        config: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Load test a running node: subscribers over WebSocket, publications over the API.
    Bench(Box<pushwire_bench::BenchArgs>),
    /// Print a development token signed with the configured HMAC secret.
    Gentoken(gentoken::GentokenArgs),
    /// Subscribe to a channel and print each publication as one JSON line.
    Sub(subscribe::SubArgs),
    /// Publish into a channel through the server API (`-` publishes each stdin line).
    Pub(publish::PubArgs),
    /// Print the version.
    Version,
}

/// `checkconfig` options.
#[derive(Debug, clap::Args)]
pub struct CheckconfigArgs {
    /// Configuration file (TOML, JSON or YAML); without it, defaults and the environment.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// A Centrifugo v6 configuration file: print the migration report (one line per key:
    /// supported, mapped, ignored, UNSUPPORTED, UNKNOWN) and exit non-zero only if pushwire
    /// would refuse to start with it.
    #[arg(long, conflicts_with = "config")]
    pub centrifugo: Option<PathBuf>,
    /// Print the effective configuration as JSON (secrets included) after the checks.
    #[arg(long)]
    pub print_effective: bool,
}

/// `serve` options; flags override the file and the environment.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Configuration file (TOML or JSON).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Bind address (`http_server.address`).
    #[arg(long)]
    pub address: Option<String>,
    /// Bind port (`http_server.port`).
    #[arg(long)]
    pub port: Option<u16>,
    /// Log level or filter (`log.level`).
    #[arg(long)]
    pub log_level: Option<String>,
    /// Log line format, `text` (default) or `json` (`log.format`).
    #[arg(long, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

impl ServeArgs {
    /// The flag layer of the configuration.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            address: self.address.clone(),
            port: self.port,
            log_level: self.log_level.clone(),
            log_format: self.log_format.clone(),
        }
    }
}

/// Runs `checkconfig`; returns the exit code (0 valid, 1 would not start).
pub fn checkconfig(args: &CheckconfigArgs) -> anyhow::Result<i32> {
    let path = args.centrifugo.as_deref().or(args.config.as_deref());
    let shown = path.map_or("configuration".to_string(), |p| p.display().to_string());
    if args.centrifugo.is_some() {
        let vars = std::env::vars().collect();
        let a = config::analyze(path, &Overrides::default(), &vars)?;
        print!("{}", a.report);
    }
    match config::load_with_warnings(path, &Overrides::default()) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            if args.print_effective {
                println!("{}", serde_json::to_string_pretty(&loaded.config)?);
            } else {
                println!("{shown}: valid");
            }
            Ok(0)
        }
        Err(e) => {
            eprintln!("{shown}: pushwire would not start: {e:#}");
            Ok(1)
        }
    }
}

/// Runs `genconfig`.
pub fn genconfig(path: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if path == std::path::Path::new("-") {
        print!("{STARTER_CONFIG}");
        return Ok(());
    }
    if path.exists() && !force {
        anyhow::bail!("{} exists; pass --force to overwrite", path.display());
    }
    std::fs::write(path, STARTER_CONFIG)?;
    println!("wrote {}", path.display());
    Ok(())
}
