//! The built-in job kinds. They use only the public [`super::JobKind`] trait, exactly as an
//! application embedding offload would to add its own.

pub mod export;
pub mod merge;
pub mod noop;
pub mod sleep;
pub mod webhook;

use std::sync::Arc;

use super::{Policy, Registry};
use crate::convert::Converter;
use crate::metrics::Metrics;

pub use export::{Export, ExportConfig};
pub use merge::Merge;
pub use noop::Noop;
pub use sleep::Sleep;
pub use webhook::{Webhook, WebhookConfig};

/// How the built-in kinds run.
#[derive(Debug, Clone)]
pub struct BuiltinConfig {
    /// Attempts of every kind (webhook deliveries get at least 8).
    pub max_attempts: u32,
    /// First retry delay of every kind.
    pub backoff: std::time::Duration,
    pub export: ExportConfig,
    pub webhook: WebhookConfig,
    /// Offer the demo and benchmark kinds `sleep` and `noop`.
    pub demo: bool,
}

/// Service-wide defaults every kind starts from.
pub fn default_policy(config: &BuiltinConfig) -> Policy {
    Policy {
        max_attempts: config.max_attempts,
        timeout: std::time::Duration::from_secs(3600),
        concurrency: 32,
        batch_size: 32,
        backoff: config.backoff,
        give_up: None,
    }
}

/// `export`, the internal `merge` (multi-document exports) and `webhook` (completion
/// callbacks), and — for demos and benchmarks, when `config.demo` — `noop` and `sleep`.
pub fn builtin(
    config: &BuiltinConfig,
    converter: Arc<dyn Converter>,
    metrics: Arc<Metrics>,
) -> Registry {
    let registry = Registry::new(default_policy(config))
        .register(Export::new(converter, config.export.clone(), metrics))
        .register(Merge)
        .register(Webhook::new(config.webhook.clone()));
    match config.demo {
        true => registry.register(Noop).register(Sleep),
        false => registry,
    }
}
