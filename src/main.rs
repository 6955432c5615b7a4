//! The `mimi-bridge` command.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mimi_bridge::config::{Config, LogFormat};
use mimi_bridge::mls::ProxyMls;
use mimi_bridge::server::{AppState, Server, ShutdownSignals};
use mimi_bridge::store::Store;

#[derive(Parser)]
#[command(
    name = "mimi-bridge",
    version,
    about = "Bridges a messaging provider into MIMI rooms"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: open and migrate the store, serve HTTP until SIGINT or SIGTERM.
    Run(ConfigArg),
    /// Validate a configuration file and exit (0 = valid).
    CheckConfig(ConfigArg),
    /// Apply pending database migrations and exit.
    Migrate(ConfigArg),
    /// Create a development CA and a certificate for each provider domain (for running several
    /// providers on one machine; use certificates from a real CA in production).
    DevCerts {
        /// Folder to write ca.pem, ca.key, <domain>.pem and <domain>.key into.
        #[arg(long)]
        out: PathBuf,
        /// A provider domain (repeat for several).
        #[arg(long = "provider", required = true)]
        providers: Vec<String>,
    },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(long, short, env = "MIMI_BRIDGE_CONFIG")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let arg = match &cli.command {
        Command::Run(a) | Command::CheckConfig(a) | Command::Migrate(a) => a,
        Command::DevCerts { out, providers } => return dev_certs(out, providers),
    };
    let config = match Config::load_or_default(arg.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::CheckConfig(_) = cli.command {
        let origin = arg
            .config
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the embedded defaults".into());
        println!("configuration OK: {origin}");
        return ExitCode::SUCCESS;
    }
    init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run(_) => run(config).await,
            Command::Migrate(_) => migrate(config).await,
            Command::CheckConfig(_) | Command::DevCerts { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dev_certs(out: &std::path::Path, providers: &[String]) -> ExitCode {
    for domain in providers {
        if let Err(e) = mimi_bridge::uri::ProviderId::new(domain) {
            eprintln!("error: `{domain}` is not a provider domain: {e}");
            return ExitCode::from(2);
        }
    }
    let written = mimi_bridge::protocol::tls::generate_dev_certificates(providers)
        .and_then(|certs| mimi_bridge::protocol::tls::write_dev_certificates(out, &certs));
    match written {
        Ok(paths) => {
            for p in paths {
                println!("wrote {}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let signals = ShutdownSignals::install()?;
    let store = Store::open_and_migrate(&config.store_options()).await?;
    let status = store.schema_status().await?;
    tracing::info!(
        backend = ?store.backend(),
        schema = status.database,
        "store ready"
    );
    let key = config
        .state_key()
        .map_err(|e| format!("the MLS state key: {e}"))?;
    let provider = mimi_bridge::uri::ProviderId::new(&config.provider.domain)?;
    let mls = Arc::new(
        ProxyMls::new(
            store.clone(),
            key,
            config.mimi.code_points.clone(),
            provider.clone(),
        )
        .with_key_package_pool(config.mls.key_package_pool),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_seconds);

    use mimi_bridge::protocol::{
        client::MimiClient, directory::Directory, listener::MimiListener, routes,
        service::MimiService, tls as mtls,
    };
    let tls_parts = match &config.mimi.tls {
        None => {
            tracing::warn!("no [mimi.tls] section: the MIMI listener and client are off");
            None
        }
        Some(tls) => {
            let identity = mtls::TlsIdentity::load(&tls.certificate, &tls.private_key)?;
            let roots = mtls::load_trust_anchors(&tls.trust_anchors)?;
            let client = MimiClient::new(
                provider.clone(),
                &identity,
                roots.clone(),
                &config.mimi.peers,
            )?;
            Some((
                tls.listen.parse::<std::net::SocketAddr>()?,
                mtls::server_config(&identity, roots)?,
                Arc::new(client),
            ))
        }
    };
    let service = Arc::new(MimiService::new(
        provider.clone(),
        store.clone(),
        mls.clone(),
        tls_parts.as_ref().map(|(_, _, c)| c.clone()),
    ));
    let delivery = service.clone().spawn_delivery(stop.clone());
    let mimi_task = match tls_parts {
        None => None,
        Some((listen, server_tls, _)) => {
            let listener = MimiListener::bind(listen, server_tls).await?;
            let addr = listener.local_addr()?;
            let base = config.public_url(addr.port()).unwrap_or_default();
            let state = routes::ProtocolState {
                domain: provider.clone(),
                directory: Arc::new(Directory::for_base(&base)),
                store: store.clone(),
                mls: mls.clone(),
                service: service.clone(),
            };
            tracing::info!(%addr, %base, "MIMI listening on {addr}");
            let stop = stop.clone();
            Some(tokio::spawn(listener.serve(
                routes::router(state),
                stop.cancelled_owned(),
                grace,
            )))
        }
    };

    let state = AppState {
        config: Arc::new(config),
        store: store.clone(),
        mls,
        service,
    };
    let server = Server::bind(state).await?;
    let addr = server.local_addr()?;
    tracing::info!(%addr, "listening on {addr}");
    let trigger = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        trigger.cancel();
    });
    server.serve(stop.cancelled_owned()).await?;
    if let Some(task) = mimi_task {
        task.await??;
    }
    let _ = delivery.await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::open(&config.store_options()).await?;
    let before = store.schema_status().await?;
    let after = store.migrate().await?;
    println!(
        "schema at version {} (was {}; this binary knows {})",
        after.database, before.database, after.binary
    );
    store.close().await;
    Ok(())
}
