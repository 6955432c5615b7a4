//! The webhook connector itself: the [`Connector`] the daemon runs when `[webhook]` is
//! configured.
//!
//! Outbound, each command is one signed POST ([`WebhookSender`]); the daemon's durable outbox
//! retries it under the same `webhook-id`. Inbound, the daemon serves `POST /webhook/v1/events`
//! and hands each checked call ([`crate::check`]) to the core's sink; the connector itself has
//! no listener of its own, so `start` and `stop` have nothing to open or close.

use std::sync::Arc;

use mimi_bridge_connector::{
    BridgeCommand, Capabilities, Connector, ConnectorError, Delivery, EventSink, async_trait,
};

use crate::outbound::WebhookSender;
use crate::signature::WebhookSecret;

/// The generic webhook connector.
#[derive(Debug)]
pub struct WebhookConnector {
    sender: WebhookSender,
    capabilities: Capabilities,
}

impl WebhookConnector {
    /// Commands go to `url`, signed with every secret in `secrets` (several during a rotation).
    /// The provider is assumed to carry everything; narrow it with
    /// [`with_capabilities`](Self::with_capabilities).
    pub fn new(url: &str, secrets: Vec<WebhookSecret>) -> Result<WebhookConnector, ConnectorError> {
        Ok(WebhookConnector {
            sender: WebhookSender::new(url, secrets)?,
            capabilities: Capabilities::all(),
        })
    }

    /// Declares what the provider can show (commands it cannot are not sent).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> WebhookConnector {
        self.capabilities = capabilities;
        self
    }
}

#[async_trait]
impl Connector for WebhookConnector {
    fn name(&self) -> &str {
        "webhook"
    }

    fn version(&self) -> &str {
        env!("CARGO_PKG_VERSION")
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    async fn start(&self, _sink: Arc<dyn EventSink>) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn stop(&self) -> Result<(), ConnectorError> {
        Ok(())
    }

    async fn deliver(&self, command: &BridgeCommand) -> Result<Delivery, ConnectorError> {
        self.sender.send(command).await
    }
}
