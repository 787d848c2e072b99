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
use crate::settings::Settings;

pub use export::Export;
pub use merge::Merge;
pub use noop::Noop;
pub use sleep::Sleep;
pub use webhook::Webhook;

/// Service-wide defaults every kind starts from.
pub fn default_policy(settings: &Settings) -> Policy {
    Policy {
        max_attempts: settings.max_attempts,
        timeout: std::time::Duration::from_secs(3600),
        concurrency: 32,
        batch_size: 32,
        backoff: settings.retry_backoff(),
        give_up: None,
    }
}

/// `export`, `noop` and `sleep`, and the internal `merge` (multi-document exports) and
/// `webhook` (completion callbacks), configured from `settings`.
pub fn builtin(
    settings: &Settings,
    converter: Arc<dyn Converter>,
    metrics: Arc<Metrics>,
) -> Registry {
    Registry::new(default_policy(settings))
        .register(Export::new(converter, settings, metrics))
        .register(Noop)
        .register(Sleep)
        .register(Merge)
        .register(Webhook::new(settings))
}
