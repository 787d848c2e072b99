//! The `offload` binary: parse the command line, start logging, run the chosen role.

use clap::Parser;
use offload::app::{self, Application, Role};
use offload::cli::{Cli, Command};
use offload::client;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    if matches!(
        cli.command,
        Some(Command::Serve | Command::Api | Command::Worker | Command::Migrate) | None
    ) {
        offload::telemetry::init();
    }
    if let Err(e) = run(cli).await {
        // One line naming what is wrong, e.g. `error: BIND_ADDR: cannot listen on ...`.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let role = match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!("{}", offload::api::builtin_spec());
            return Ok(());
        }
        Command::Migrate => return app::migrate(&cli.settings).await,
        Command::Submit {
            files,
            server,
            wait,
            output,
        } => {
            return client::submit(&server.url, &files, wait, output.as_deref()).await;
        }
        Command::Status { id, server } => return client::status(&server.url, id).await,
        Command::Cancel { id, server } => return client::cancel(&server.url, id).await,
        Command::Serve => Role::Serve,
        Command::Api => Role::Api,
        Command::Worker => Role::Worker,
    };
    let app = Application::build(cli.settings, role).await?;
    if let Some(addr) = app.local_addr() {
        tracing::info!(%addr, ?role, "listening");
    } else {
        tracing::info!(?role, "worker started");
    }
    app.run_until_stopped(offload::shutdown::signal()).await
}
