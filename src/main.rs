//! The `offload` binary: parse the command line, start logging, run the chosen role.

use offload::app::{self, Application, Role};
use offload::cli::{self, Cli, Command};
use offload::client;
use offload::settings::Settings;

#[tokio::main]
async fn main() {
    let cli = cli::parse();
    if matches!(
        cli.command,
        Some(Command::Serve(_) | Command::Api(_) | Command::Worker(_) | Command::Migrate(_)) | None
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
    let (role, settings) = match cli.command {
        None => (Role::Serve, cli.settings),
        Some(Command::Openapi) => {
            println!("{}", offload::api::builtin_spec());
            return Ok(());
        }
        Some(Command::Migrate(r)) => return app::migrate(&r.settings).await,
        Some(Command::Submit {
            files,
            server,
            batch,
            wait,
            output,
            export,
        }) => {
            let export = export.request()?;
            let remote = server.remote()?;
            let output = output.as_deref();
            return client::submit(&remote, &files, batch, wait, output, &export).await;
        }
        Some(Command::Status { id, server, batch }) => {
            let remote = server.remote()?;
            return match batch {
                true => client::batch_status(&remote, id).await,
                false => client::status(&remote, id).await,
            };
        }
        Some(Command::Cancel { id, server }) => {
            return client::cancel(&server.remote()?, id).await;
        }
        Some(Command::Serve(r)) => (Role::Serve, r.settings),
        Some(Command::Api(r)) => (Role::Api, r.settings),
        Some(Command::Worker(r)) => (Role::Worker, r.settings),
    };
    serve(settings, role).await
}

async fn serve(settings: Settings, role: Role) -> anyhow::Result<()> {
    let app = Application::build(settings, role).await?;
    if let Some(addr) = app.local_addr() {
        tracing::info!(%addr, ?role, "listening");
    } else {
        tracing::info!(?role, "worker started");
    }
    app.run_until_stopped(offload::shutdown::signal()).await
}
