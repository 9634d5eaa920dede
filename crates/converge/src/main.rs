//! The `converge` command: serve, print an example config, add users, make tokens, register
//! application services.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use converge_service::config::{self, Config, LogFormat};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "converge",
    version,
    about = "A converged communications server speaking the Matrix client-server API"
)]
struct Cli {
    /// The configuration file (TOML). Without it the embedded defaults are used.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Log level or filter (overrides the config's log_level; RUST_LOG overrides both).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage registration tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the media repository.
    Media {
        #[command(subcommand)]
        command: MediaCommand,
    },
    /// Manage application services (bridges).
    Appservice {
        #[command(subcommand)]
        command: AppserviceCommand,
    },
}

#[derive(Subcommand)]
enum AppserviceCommand {
    /// Check a registration file and register it (a copy in <data_dir>/appservices/); a
    /// running server takes it on SIGHUP.
    Add {
        /// The registration file (YAML), as the bridge generated it.
        file: PathBuf,
    },
    /// List the registered application services and their delivery state.
    List,
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Delete media uploaded longer ago than a duration, and files nothing uses any more.
    Purge {
        /// How old media must be to go, e.g. 30d (0s for any age).
        #[arg(long, value_parser = config::human_duration::parse)]
        older_than: std::time::Duration,
        /// Only media that no event and no profile refers to.
        #[arg(long)]
        unreferenced: bool,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print a commented example configuration with every key.
    Example,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user, whatever the registration mode.
    Add {
        /// The user's localpart, e.g. `alice` for @alice:server_name.
        name: String,
        /// The password (visible in the process list; prefer --password-stdin).
        #[arg(long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Make the user a server admin.
        #[arg(long)]
        admin: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a registration token.
    Create {
        /// How many registrations may use it (unlimited if not given).
        #[arg(long)]
        uses: Option<u32>,
        /// How long it stays valid, e.g. 30m, 12h, 7d (forever if not given).
        #[arg(long, value_parser = config::human_duration::parse)]
        expires: Option<std::time::Duration>,
    },
}

/// Exit code for a configuration that cannot be used.
const EXIT_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Config {
        command: ConfigCommand::Example,
    } = cli.command
    {
        print!("{}", converge::config::example());
        return ExitCode::SUCCESS;
    }
    let config = match converge::config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("converge: configuration error: {err}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(&config, cli.log_level.as_deref());
    // Panics are caught per request and answered with a 500; log them as one line
    // through tracing rather than a backtrace on stderr.
    std::panic::set_hook(Box::new(
        |info| tracing::error!(panic = %info, "a task panicked"),
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("converge: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("converge: {message}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config, level: Option<&str>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level.unwrap_or(&config.log_level)))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(command: Command, config: Config) -> Result<(), String> {
    match command {
        Command::Serve => {
            let server = converge::start(config).await.map_err(|e| e.to_string())?;
            let reloads = tokio::spawn(reload_on_hangup(server.state.services.clone()));
            shutdown_signal().await;
            reloads.abort();
            tracing::info!("shutting down");
            server.shutdown().await;
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Add {
                    name,
                    password,
                    password_stdin,
                    admin,
                },
        } => {
            let password = match (password, password_stdin) {
                (Some(password), _) => password,
                (None, true) => {
                    let mut input = String::new();
                    std::io::stdin()
                        .read_to_string(&mut input)
                        .map_err(|e| format!("reading the password: {e}"))?;
                    input.trim_end_matches(['\r', '\n']).to_owned()
                }
                (None, false) => {
                    return Err("give a password with --password or --password-stdin".into());
                }
            };
            let services = services(&config).await?;
            let result = services
                .registration
                .create_user(&name, password, admin)
                .await;
            services.close_store().await;
            let user_id = result.map_err(|e| format!("cannot add the user: {e}"))?;
            println!("{user_id}");
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { uses, expires },
        } => {
            let services = services(&config).await?;
            let result = services.registration.create_token(uses, expires).await;
            services.close_store().await;
            let token = result.map_err(|e| format!("cannot create the token: {e}"))?;
            println!("{}", token.token);
            Ok(())
        }
        Command::Media {
            command:
                MediaCommand::Purge {
                    older_than,
                    unreferenced,
                },
        } => {
            let services = services(&config).await?;
            let cutoff = converge_service::now_ms()
                - i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
            let result = if unreferenced {
                services.media.purge_unreferenced(cutoff).await
            } else {
                services.media.purge_before(cutoff).await
            };
            services.close_store().await;
            let deleted = result.map_err(|e| format!("cannot purge media: {e}"))?;
            println!("{deleted}");
            Ok(())
        }
        Command::Appservice {
            command: AppserviceCommand::Add { file },
        } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let service = converge_service::appservices::parse(&text, &config.server_name)
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let dir = config.data_dir.join("appservices");
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let target = dir.join(format!("{}.yaml", service.id()));
            let previous = std::fs::read(&target).ok();
            std::fs::write(&target, &text)
                .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
            // The whole set must load (no overlaps, no existing users taken over): if not,
            // the file is put back as it was.
            let loaded = match services(&config).await {
                Ok(services) => {
                    services.close_store().await;
                    Ok(())
                }
                Err(err) => Err(err),
            };
            if let Err(err) = loaded {
                match previous {
                    Some(previous) => {
                        let _ = std::fs::write(&target, previous);
                    }
                    None => {
                        let _ = std::fs::remove_file(&target);
                    }
                }
                return Err(err);
            }
            println!(
                "registered {} ({}); a running server takes it on SIGHUP (kill -HUP <pid>)",
                service.id(),
                target.display()
            );
            Ok(())
        }
        Command::Appservice {
            command: AppserviceCommand::List,
        } => {
            let services = services(&config).await?;
            let status = services.appservices.status().await;
            services.close_store().await;
            for service in status.map_err(|e| e.to_string())? {
                println!("{service}");
            }
            Ok(())
        }
        Command::Config { .. } => unreachable!("handled before the runtime starts"),
    }
}

async fn services(config: &Config) -> Result<converge_service::Services, String> {
    converge::services(config).await.map_err(|e| e.to_string())
}

/// Reads the application service registrations again on every SIGHUP.
async fn reload_on_hangup(services: std::sync::Arc<converge_service::Services>) {
    #[cfg(unix)]
    {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            tracing::warn!("cannot listen for SIGHUP: registrations reload only on restart");
            return;
        };
        while hangups.recv().await.is_some() {
            match services.appservices.load().await {
                Ok(count) => tracing::info!(appservices = count, "reloaded on SIGHUP"),
                Err(err) => {
                    tracing::error!(error = %err, "reload refused; the registrations in use stay")
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = services;
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
