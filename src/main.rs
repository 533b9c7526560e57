//! The `forge-shim` binary: parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use forge_shim::config::{Config, ConfigSource, LoadedConfig, LogFormat};

/// Exit code for a bad config (sysexits' EX_USAGE).
const EXIT_USAGE: u8 = 64;

#[derive(Parser)]
#[command(
    name = "forge-shim",
    version,
    about = "A Docker socket shim: standards on every create, sleep and wake for idle containers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen on the shim's socket and forward to dockerd.
    Serve {
        /// Config file; the embedded shim.yml when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Override `listen`.
        #[arg(long)]
        listen: Option<PathBuf>,
        /// Override `upstream` (a path or unix:// URL).
        #[arg(long)]
        upstream: Option<String>,
    },
    /// Validate a config and print the effective one.
    Check {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check every container on the host against the standards' checklist.
    Audit {
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every container the running shim tracks, with its sleep state.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Put containers to sleep now (they must have nothing in use).
    Sleep {
        #[command(flatten)]
        target: Target,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Wake containers the shim put to sleep.
    Wake {
        #[command(flatten)]
        target: Target,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Make the running shim read its config file again (as SIGHUP does).
    Reload {
        #[command(flatten)]
        target: Target,
    },
    /// Learn an image now: the running shim runs a throwaway container of
    /// it (its own command, no published ports, removed afterwards) and
    /// prints what it learned and what the image's next create gets.
    Profile {
        #[command(flatten)]
        target: Target,
        image: String,
        /// How long to watch it.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Which running shim a client command talks to.
#[derive(clap::Args)]
struct Target {
    /// The shim's socket. Default: FORGE_SHIM_SOCKET, else DOCKER_HOST or
    /// the current docker context when a shim answers there, else the
    /// config's `listen`.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Config whose `listen` names the socket.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

impl Target {
    fn hints(self) -> Result<forge_shim::cli::Hints, ExitCode> {
        let loaded = load_config(self.config.as_deref())?;
        Ok(forge_shim::cli::Hints::from_env(self.socket, &loaded.config.listen))
    }
}

/// Runs a client command on a small runtime; errors print and exit 1.
fn client<F: std::future::Future<Output = anyhow::Result<()>>>(work: impl FnOnce() -> F) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("forge-shim: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("forge-shim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match load_config(config.as_deref()) {
            Ok(loaded) => {
                println!("# effective config from {}", loaded.source);
                print!("{}", serde_norway::to_string(&loaded.config).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Audit { config, json } => match load_config(config.as_deref()) {
            Ok(loaded) => client(|| async move {
                // Which containers the shim created, from its state_dir.
                let origins = match forge_shim::recorded_origins(&loaded.config.state_dir) {
                    Ok(origins) => origins.map(|origins| {
                        origins
                            .into_iter()
                            .map(|(id, origin)| (id, origin.label().to_string()))
                            .collect()
                    }),
                    Err(e) => {
                        eprintln!("forge-shim: origins unknown, bypasses not shown: {e}");
                        None
                    }
                };
                let reports = forge_shim::run_audit(&loaded, origins.as_ref()).await?;
                if json {
                    let compliant = reports.iter().filter(|r| r.compliant()).count();
                    let value =
                        serde_json::json!({ "containers": reports, "compliant": compliant, "total": reports.len() });
                    println!("{}", serde_json::to_string_pretty(&value)?);
                } else {
                    forge_shim::audit::print_text(&reports);
                }
                Ok(())
            }),
            Err(code) => code,
        },
        Command::Status { target, json } => match target.hints() {
            Ok(hints) => client(|| async move {
                let socket = forge_shim::cli::find_socket(&hints).await;
                forge_shim::cli::status(&socket, json).await
            }),
            Err(code) => code,
        },
        Command::Sleep { target, names } => match target.hints() {
            Ok(hints) => client(|| async move {
                let socket = forge_shim::cli::find_socket(&hints).await;
                forge_shim::cli::transition(&socket, "sleep", &names).await
            }),
            Err(code) => code,
        },
        Command::Wake { target, names } => match target.hints() {
            Ok(hints) => client(|| async move {
                let socket = forge_shim::cli::find_socket(&hints).await;
                forge_shim::cli::transition(&socket, "wake", &names).await
            }),
            Err(code) => code,
        },
        Command::Reload { target } => match target.hints() {
            Ok(hints) => client(|| async move {
                let socket = forge_shim::cli::find_socket(&hints).await;
                forge_shim::cli::reload(&socket).await
            }),
            Err(code) => code,
        },
        Command::Profile {
            target,
            image,
            seconds,
            json,
        } => match target.hints() {
            Ok(hints) => client(|| async move {
                let socket = forge_shim::cli::find_socket(&hints).await;
                forge_shim::cli::profile(&socket, &image, seconds, json).await
            }),
            Err(code) => code,
        },
        Command::Serve {
            config,
            listen,
            upstream,
        } => {
            let source = ConfigSource {
                path: config,
                listen,
                upstream,
            };
            let loaded = match source.load() {
                Ok(loaded) => loaded,
                Err(e) => {
                    eprintln!("forge-shim: invalid config:\n{e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            init_tracing(loaded.config.log_format);
            // One thread by default: a request and its response then never
            // cross threads, which costs less CPU per request than a
            // work-stealing pool on the small hosts the shim runs on, and one
            // thread serves far more than dockerd can (README "Performance").
            let runtime = match loaded.config.worker_threads {
                1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
                0 => tokio::runtime::Builder::new_multi_thread().enable_all().build(),
                n => tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(n)
                    .enable_all()
                    .build(),
            };
            let runtime = match runtime {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("forge-shim: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(forge_shim::run(source, loaded)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("forge-shim: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load_config(path: Option<&std::path::Path>) -> Result<LoadedConfig, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("forge-shim: invalid config:\n{e}");
        ExitCode::from(EXIT_USAGE)
    })
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
