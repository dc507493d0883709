//! The `mxping` command: parse arguments, set up logging, run, map the outcome to an exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mxping::Services;
use mxping::cli::check;
use mxping::cli::serve::{self, ConfigSource};
use mxping::config::Config;

/// Exit code for a usage or config error (design.md).
const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "mxping",
    version,
    about = "Matrix homeserver federation latency and availability monitor",
    long_about = "Resolves each Matrix server's federation delegation exactly as the spec says \
                  (well-known, SRV, port 8448), probes /_matrix/federation/v1/version on every \
                  address, and reports latency, availability and why a server is unreachable.\n\n\
                  Without --config, ./servers.toml is used if present, else the built-in list."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the monitor: probe every server on its interval and serve the status page, the
    /// JSON API (/api/v1/servers) and Prometheus metrics (/metrics).
    ///
    /// SIGHUP reloads the config (an invalid file is logged and the old config keeps
    /// running); SIGINT/SIGTERM stop it within a few seconds. Exit status 2 on a config error.
    Serve {
        /// Config file.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen on this address instead of [web] listen, e.g. 0.0.0.0:8080.
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Keep history in this directory instead of [storage] data_dir (the container image
        /// uses /var/lib/mxping, its own volume, so the config can be mounted read-only).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Discover and probe one server now, and print the whole chain and a verdict.
    ///
    /// Exit status: 0 when federation works, 1 when it does not, 2 on a usage or config error.
    Check {
        /// The Matrix server name, as in user IDs (@user:SERVER_NAME), e.g. matrix.org.
        server_name: String,
        /// Config file (DNS, TLS, network and timeout settings are used).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Print the JSON `Server` object plus the signing-key checks instead of text.
        #[arg(long)]
        json: bool,
        /// Also send a request signed as the config's [federation] server_name: the server
        /// must fetch that name's key (from a running `mxping serve`) to accept it.
        #[arg(long)]
        federation: bool,
    },
    /// Exit 0 if a running monitor answers on /healthz (for container health checks).
    Healthcheck {
        /// The health URL.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Write a new ed25519 key for a vantage agent to FILE (Synapse's signing-key format)
    /// and print its public key, for the hub's [[vantage]] public_key. Refuses to overwrite.
    Keygen {
        /// The key file to create (its mode is 0600).
        file: PathBuf,
    },
    /// Start or end a maintenance window on a running monitor (its admin API, with the token
    /// of [web] admin_token_file). During a window a server is probed but shown as in
    /// maintenance, its rounds do not count in uptime and its alerts are replaced by the
    /// window's start and end.
    ///
    /// Exit status: 0 when done, 1 when the monitor refused or did not answer, 2 on a usage or
    /// config error.
    Maintenance {
        #[command(subcommand)]
        action: MaintenanceAction,
        #[command(flatten)]
        remote: Remote,
    },
    /// Add a note to a server's incident on a running monitor (its admin API): shown on the
    /// status page, the detail page's timeline, the feed, and as a reply in the alert's thread.
    ///
    /// Exit status: 0 when done, 1 when the monitor refused or did not answer, 2 on a usage or
    /// config error.
    Note {
        /// The server.
        server: String,
        /// What users should know (500 characters; may be empty with --resolve).
        #[arg(default_value = "")]
        text: String,
        /// The note resolves the incident.
        #[arg(long)]
        resolve: bool,
        /// Opening an incident: resolve it by itself once the server is operational again.
        #[arg(long)]
        until_recovered: bool,
        /// Who writes it (default: $USER).
        #[arg(long)]
        by: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check a config file and exit: 0 when valid, 2 when not.
    Validate {
        /// Config file to check.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
}

/// Where the running monitor's admin API is.
#[derive(clap::Args)]
struct Remote {
    /// Config file: where the monitor listens and its token file.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The monitor's address instead of [web] listen, e.g. https://status.example.org.
    #[arg(long, value_name = "URL", global = true)]
    url: Option<String>,
    /// The token file instead of [web] admin_token_file.
    #[arg(long, value_name = "FILE", global = true)]
    token_file: Option<PathBuf>,
}

/// Sends `call` to the monitor `remote` names; the exit code.
fn remote_call(remote: &Remote, call: mxping::cli::admin::Call, what: &str) -> ExitCode {
    let config = match load(remote.config.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
    match runtime.block_on(mxping::cli::admin::run(
        &config,
        remote.url.as_deref(),
        remote.token_file.as_deref(),
        call,
    )) {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(f) => {
            eprintln!("mxping {what}: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[derive(Subcommand)]
enum MaintenanceAction {
    /// Start a window now on SERVERS (a name, or a glob such as "*.example.org").
    Start {
        /// A server name or glob.
        servers: String,
        /// How long, e.g. 2h or 90m (one minute to seven days).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// What users should know, shown on the page and in the alert (500 characters).
        #[arg(long, default_value = "")]
        note: String,
        /// Who starts it (default: $USER).
        #[arg(long)]
        by: Option<String>,
    },
    /// End the window of SERVER now (one started by hand).
    End {
        /// The server.
        server: String,
    },
}

/// `mxping keygen FILE`: a new key, never over an existing file, readable by its owner only.
fn keygen(file: &std::path::Path) -> ExitCode {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let key = mxping::Key::generate();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| f.write_all(key.to_file().as_bytes()));
    match created {
        Ok(()) => {
            println!("wrote {} ({})", file.display(), key.id);
            println!(
                "On the hub, add:\n\n[[vantage]]\nname = \"<this agent's [web] vantage>\"\npublic_key = \"{}\"",
                key.public()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "mxping keygen: cannot create {}: {e} (an existing key is never overwritten)",
                file.display()
            );
            ExitCode::from(1)
        }
    }
}

fn load(config: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let loaded = match config {
        Some(path) => Config::load(path),
        None => Config::load_default(),
    };
    loaded.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_USAGE)
    })
}

/// Starts `mxping serve` again, once, with `MALLOC_ARENA_MAX=1` unless the operator set it (or
/// `GLIBC_TUNABLES`' `arena_max`). glibc gives every thread that allocates under contention an
/// arena of its own, up to eight per core, and each keeps its own freed memory: at 10,000
/// servers that was 275 MiB RSS against 215 MiB with two arenas, for the same live heap. With
/// two, memory a round frees in one arena is not reused by the threads of the other: the same
/// build ran at 201-263 MiB with two and 194-203 MiB with one, at the same CPU and page
/// latency (small allocations do not take the arena's lock: glibc caches them per thread).
/// glibc reads the setting only at start-up, hence the `exec` (same process ID, nothing else
/// changes); if it fails, the monitor runs with glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn limit_malloc_arenas() {
    use std::os::unix::process::CommandExt;
    const VAR: &str = "MALLOC_ARENA_MAX";
    let tuned = std::env::var_os("GLIBC_TUNABLES")
        .is_some_and(|t| t.to_string_lossy().contains("glibc.malloc.arena_max"));
    if std::env::var_os(VAR).is_some() || tuned {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
    let error = std::process::Command::new(&exe)
        .arg0(argv0)
        .args(args)
        .env(VAR, "1")
        .exec();
    tracing::warn!("could not restart with {VAR}=1 ({error}); glibc's default arenas are used");
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MXPING_LOG")
                .unwrap_or_else(|_| "mxping=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    mxping::install_default_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            data_dir,
        } => {
            limit_malloc_arenas();
            let source = match config {
                Some(path) => ConfigSource::File(path),
                None => ConfigSource::Default,
            };
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            match runtime.block_on(serve::run(source, listen, data_dir)) {
                Ok(()) => ExitCode::SUCCESS,
                // A config or command-line problem reads like `validate`'s report.
                Err(e) if e.exit_code() == EXIT_USAGE => {
                    eprintln!("{e}");
                    ExitCode::from(EXIT_USAGE)
                }
                Err(e) => {
                    eprintln!("mxping: {e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::Healthcheck { url } => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            runtime.block_on(async {
                match mxping::get_trusted(&url, std::time::Duration::from_secs(3)).await {
                    Ok(status) if status.is_success() => ExitCode::SUCCESS,
                    Ok(status) => {
                        eprintln!("{url}: HTTP {status}");
                        ExitCode::FAILURE
                    }
                    Err(e) => {
                        eprintln!("{url}: {e}");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Keygen { file } => keygen(&file),
        Command::Maintenance { action, remote } => {
            let call = match action {
                MaintenanceAction::Start {
                    servers,
                    duration,
                    note,
                    by,
                } => mxping::cli::admin::Call::Start {
                    pattern: servers,
                    duration,
                    note,
                    by,
                },
                MaintenanceAction::End { server } => mxping::cli::admin::Call::End { server },
            };
            remote_call(&remote, call, "maintenance")
        }
        Command::Note {
            server,
            text,
            resolve,
            until_recovered,
            by,
            remote,
        } => remote_call(
            &remote,
            mxping::cli::admin::Call::Note {
                server,
                text,
                by,
                resolve,
                until_recovered,
            },
            "note",
        ),
        Command::Validate { config } => match load(config.as_ref()) {
            Ok(c) => {
                println!("{}: valid ({} servers)", c.source, c.servers.len());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Check {
            server_name,
            config,
            json,
            federation,
        } => {
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(code) => return code,
            };
            if federation && config.federation.is_none() {
                eprintln!(
                    "mxping check --federation: {} has no [federation] section; add \
                     server_name and key_file (README \"Federation both ways\")",
                    config.source
                );
                return ExitCode::from(EXIT_USAGE);
            }
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime starts");
            runtime.block_on(async {
                let services = match Services::new(&config) {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("{}: {e}", config.source);
                        return ExitCode::from(EXIT_USAGE);
                    }
                };
                let report = check::run(
                    &services,
                    &server_name,
                    config.monitor.green_below,
                    federation,
                )
                .await;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&report).expect("reports serialize")
                    );
                } else {
                    print!("{}", check::render_text(&report));
                }
                let invalid_name = report
                    .server
                    .error
                    .as_ref()
                    .is_some_and(|e| e.kind == mxping::error::ErrorKind::InvalidName);
                if invalid_name {
                    ExitCode::from(EXIT_USAGE)
                } else if report.ok() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            })
        }
    }
}
