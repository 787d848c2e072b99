//! The command line: `offload [serve|api|worker|migrate|openapi]` plus the settings flags
//! (every flag also reads an environment variable; see [`crate::settings`]).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::settings::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "offload",
    version,
    about = "Durable document-export jobs over HTTP."
)]
pub struct Cli {
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
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
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// API and an in-process worker (the default).
    Serve,
    /// API only; workers run elsewhere on the same database and storage.
    Api,
    /// Worker only.
    Worker,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print the OpenAPI document (JSON) to stdout.
    Openapi,
    /// Upload documents to a running offload; with --wait, follow and download the results.
    Submit {
        /// Documents to convert.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        server: Server,
        /// Follow each job until it ends and download its result.
        #[arg(long)]
        wait: bool,
        /// Where to write the result (a directory for several files); implies --wait.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Show a job.
    Status {
        id: Uuid,
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
