//! The command line: the service's roles `offload [serve|api|worker|migrate]` with the
//! settings flags (every flag also reads an environment variable; see [`crate::settings`]),
//! `offload openapi`, and the client commands `submit | status | cancel`, which take only what
//! a client uses.

use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use uuid::Uuid;

use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "offload",
    version,
    about = "Durable document-export jobs over HTTP.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The settings of `offload` without a subcommand (which serves).
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Parses the command line. A value that does not parse stops with one line naming its
/// variable (`error: BIND_ADDR: not a socket address …`), like every start-up error;
/// `--help`, `--version` and usage mistakes print as clap prints them.
pub fn parse() -> Cli {
    let matches = Cli::command().try_get_matches();
    let parsed = matches.and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::ValueValidation => {
            eprintln!("error: {}", one_line(&e));
            std::process::exit(1);
        }
        Err(e) => e.exit(),
    }
}

/// `NAME: reason` for a value clap refused, `NAME` being the argument's environment variable.
fn one_line(e: &clap::Error) -> String {
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.clone(),
        _ => String::new(),
    };
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(v)) => v.clone(),
        _ => String::new(),
    };
    let long = arg
        .trim_start_matches('-')
        .split([' ', '<', '='])
        .next()
        .unwrap_or_default()
        .to_string();
    let reason = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "invalid value".into());
    match find_arg(&Cli::command(), &long) {
        // A secret's value (API keys, a database password) is never echoed.
        Some((name, true)) => format!("{name}: {reason}"),
        Some((name, false)) => format!("{name}: {reason} (got {value:?})"),
        None => format!("{arg}: {reason}"),
    }
}

/// The environment variable of the flag `--long` (in `cmd` or any of its subcommands), and
/// whether its values are secret.
fn find_arg(cmd: &clap::Command, long: &str) -> Option<(String, bool)> {
    let here = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            Some((env, a.is_hide_env_values_set()))
        });
    here.or_else(|| cmd.get_subcommands().find_map(|sub| find_arg(sub, long)))
}

/// A role's settings.
#[derive(Debug, Clone, Args)]
pub struct RoleSettings {
    #[command(flatten)]
    pub settings: Settings,
}

/// Where a running offload listens (for the client commands).
#[derive(Debug, Clone, Args)]
pub struct Server {
    /// Base URL of a running offload.
    #[arg(
        long = "server",
        env = "OFFLOAD_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// API key of a server with `API_KEYS` (sent as `Authorization: Bearer`).
    #[arg(long = "api-key", env = "OFFLOAD_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

impl Server {
    /// A client of this server.
    pub fn remote(&self) -> anyhow::Result<crate::client::Remote> {
        crate::client::Remote::new(&self.url, self.api_key.as_deref())
    }
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// API and an in-process worker (the default).
    Serve(RoleSettings),
    /// API only; workers run elsewhere on the same database and storage.
    Api(RoleSettings),
    /// Worker only.
    Worker(RoleSettings),
    /// Create or upgrade the database schema, then exit.
    Migrate(RoleSettings),
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
    /// Upload documents to a running offload; with --wait, follow and download the results.
    Submit {
        /// Documents to convert.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: Server,
        /// Upload every file in one request, as one batch (one job per file, followed as one:
        /// `offload status --batch ID`); prints the batch's id first.
        #[arg(long)]
        batch: bool,
        /// Follow each job until it ends and download its result.
        #[arg(long)]
        wait: bool,
        /// Where to write the result (a directory for several files); implies --wait.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
        #[command(flatten)]
        export: crate::client::ExportChoices,
    },
    /// Show a job (with --batch, a batch).
    Status {
        id: Uuid,
        /// ID is a batch's: show its counts and its jobs.
        #[arg(long)]
        batch: bool,
        #[command(flatten)]
        server: Server,
    },
    /// Cancel a queued or running job.
    Cancel {
        id: Uuid,
        #[command(flatten)]
        server: Server,
    },
}
