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
    /// Write the Matrix appservice registration for the homeserver, from the `[matrix]` section
    /// of the configuration (JSON, which homeservers read as YAML).
    MatrixRegistration {
        #[command(flatten)]
        config: ConfigArg,
        /// File to write; standard output when absent.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print a fresh `whsec_` secret for the webhook connector.
    WebhookSecret,
    /// Write the protocol test vectors (every protocol-06 §5 body, encoded and described)
    /// into a folder, from the MLS objects of its `inputs.json`.
    TestVectors {
        /// The folder (the repository keeps them in `test-vectors/`).
        #[arg(long, default_value = "test-vectors")]
        out: PathBuf,
        /// Make new MLS inputs first (the vectors then all change).
        #[arg(long)]
        new_inputs: bool,
    },
    /// Run a small receiver of the webhook connector's commands: each signed command is checked
    /// and printed as one JSON line (a provider's own server does this in production).
    WebhookReceiver {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// A `whsec_` secret shared with the bridge (repeat during a rotation).
        #[arg(long = "secret", required = true)]
        secrets: Vec<String>,
    },
    /// Sign an event (JSON, as an argument or on standard input) and submit it to a bridge's
    /// webhook API, as a provider does.
    WebhookSend {
        /// The bridge's HTTP base URL, e.g. http://127.0.0.1:8080.
        #[arg(long)]
        bridge: String,
        /// A `whsec_` secret shared with the bridge.
        #[arg(long = "secret", required = true)]
        secrets: Vec<String>,
        /// The event; read from standard input when absent.
        event: Option<String>,
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
        Command::MatrixRegistration { config, .. } => config,
        Command::DevCerts { out, providers } => return dev_certs(out, providers),
        Command::WebhookSecret => return webhook_secret(),
        Command::TestVectors { out, new_inputs } => {
            return report_written(mimi_bridge::protocol::vectors::write_folder(
                out,
                *new_inputs,
            ));
        }
        Command::WebhookReceiver { .. } | Command::WebhookSend { .. } => {
            return webhook_tool(cli.command);
        }
    };
    let config = match Config::load_or_default(arg.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::MatrixRegistration { out, .. } = &cli.command {
        return matrix_registration(&config, out.as_deref());
    }
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
            _ => Ok(()),
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
    report_written(written)
}

/// Prints the files a command wrote, or its error.
fn report_written(written: Result<Vec<PathBuf>, impl std::fmt::Display>) -> ExitCode {
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

fn matrix_registration(config: &Config, out: Option<&std::path::Path>) -> ExitCode {
    let Some(settings) = config.matrix_settings() else {
        eprintln!("error: the configuration has no [matrix] section");
        return ExitCode::from(2);
    };
    let text = settings.registration_file();
    match out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => {
                println!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

fn webhook_secret() -> ExitCode {
    let mut key = vec![0u8; 32];
    if let Err(e) = getrandom::fill(&mut key) {
        eprintln!("error: no randomness: {e}");
        return ExitCode::FAILURE;
    }
    match mimi_bridge_webhook::WebhookSecret::from_bytes(key) {
        Ok(secret) => {
            println!("{}", secret.encoded());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_secrets(secrets: &[String]) -> Result<Vec<mimi_bridge_webhook::WebhookSecret>, String> {
    secrets
        .iter()
        .map(|s| s.parse().map_err(|e| format!("--secret: {e}")))
        .collect()
}

/// The provider-side helpers of the webhook connector.
fn webhook_tool(command: Command) -> ExitCode {
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
    let result: Result<(), String> = runtime.block_on(async move {
        match command {
            Command::WebhookReceiver { listen, secrets } => {
                let secrets = parse_secrets(&secrets)?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
                eprintln!(
                    "receiving commands on http://{}",
                    listener.local_addr().map_err(|e| e.to_string())?
                );
                let receiver =
                    mimi_bridge_webhook::Receiver::new(mimi_bridge_webhook::ReceiverOptions {
                        secrets,
                        fail_first: 0,
                    });
                mimi_bridge_webhook::serve(listener, receiver, true)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::WebhookSend {
                bridge,
                secrets,
                event,
            } => {
                let text = match event {
                    Some(t) => t,
                    None => std::io::read_to_string(std::io::stdin()).map_err(|e| e.to_string())?,
                };
                let event: mimi_bridge_connector::ConnectorEvent = serde_json::from_str(&text)
                    .map_err(|e| format!("the event is not valid: {e}"))?;
                let client =
                    mimi_bridge_webhook::ProviderClient::new(bridge, parse_secrets(&secrets)?)
                        .map_err(|e| e.to_string())?;
                let answer = client.submit(&event).await.map_err(|e| e.to_string())?;
                println!(
                    "{}",
                    serde_json::json!({"status": answer.status, "duplicate": answer.duplicate})
                );
                Ok(())
            }
            _ => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
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
        .with_key_package_pool(config.mls.key_package_pool)
        .with_catch_up_bound(config.mls.catch_up_epochs),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let grace = std::time::Duration::from_secs(config.server.shutdown_grace_seconds);

    use mimi_bridge::core::{Bridge, BridgeOptions};
    use mimi_bridge::protocol::{
        client::MimiClient,
        directory::Directory,
        listener::MimiListener,
        routes,
        service::{ConsentPolicy, MimiService},
        tls as mtls,
    };
    use mimi_bridge::server::WebhookInbound;
    use mimi_bridge_matrix::MatrixConnector;
    use mimi_bridge_webhook::{Verifier, WebhookConnector};
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
    let consent_policy = match config.bridge.consent {
        mimi_bridge::config::ConsentMode::Ask => ConsentPolicy::Ask,
        mimi_bridge::config::ConsentMode::Grant => ConsentPolicy::Grant,
    };
    let service = Arc::new(
        MimiService::new(
            provider.clone(),
            store.clone(),
            mls.clone(),
            tls_parts.as_ref().map(|(_, _, c)| c.clone()),
        )
        .with_consent_policy(consent_policy)
        .with_max_delivery_attempts(config.bridge.max_delivery_attempts),
    );
    let options = BridgeOptions {
        consent_wait: std::time::Duration::from_secs(config.bridge.consent_wait_seconds),
        max_delivery_attempts: i64::from(config.bridge.max_delivery_attempts),
        origin_keys: config.mimi.content_extensions,
        ..BridgeOptions::default()
    };
    let mut matrix = None;
    let (webhook, bridge_task) = match (&config.webhook, config.matrix_settings()) {
        (None, None) => (None, None),
        (None, Some(settings)) => {
            let connector = MatrixConnector::new(
                settings.clone(),
                Arc::new(mimi_bridge::server::matrix::StoreTransactionLog(
                    store.clone(),
                )),
            )?;
            let bridge = Bridge::new(
                store.clone(),
                mls.clone(),
                service.clone(),
                connector.clone(),
                options.clone(),
            );
            let task = bridge.start(stop.clone()).await?;
            tracing::info!(
                homeserver = %settings.homeserver_url,
                "Matrix connector: appservice {} for {}",
                settings.appservice_id,
                settings.server_name
            );
            matrix = Some(connector);
            (None, Some(task))
        }
        (Some(w), _) => {
            let secrets = w.parsed_secrets()?;
            let connector = Arc::new(WebhookConnector::new(&w.url, secrets.clone())?);
            let bridge = Bridge::new(
                store.clone(),
                mls.clone(),
                service.clone(),
                connector,
                options.clone(),
            );
            let task = bridge.start(stop.clone()).await?;
            tracing::info!(url = %w.url, "webhook connector: commands go to {}", w.url);
            (
                Some(WebhookInbound {
                    verifier: Arc::new(Verifier::new(secrets)),
                    bridge,
                }),
                Some(task),
            )
        }
    };
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
        webhook,
        matrix,
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
    if let Some(task) = bridge_task {
        let _ = task.await;
    }
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
