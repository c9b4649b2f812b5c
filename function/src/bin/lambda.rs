#![recursion_limit = "256"]
//! The Lambda function (`bootstrap` on provided.al2023): a thin shell that
//! builds the S3 client once, reads `PKGSUM_*` settings, logs JSON, and
//! hands each payload to [`pkgsum::payload::apply_payload`].

use std::sync::Arc;

use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use pkgsum::config::Config;
use pkgsum::payload::{PayloadError, apply_payload};
use pkgsum::store::s3::{S3Store, client_from_env};
use serde_json::Value;

/// A failed invocation. The runtime logs a handler's error with `Debug`
/// before reporting it, so `Debug` here is the same readable line.
struct Failure(PayloadError);

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pkgsum::{}: {}", self.0.kind(), self.0)
    }
}

/// Lambda's error report: a short type and the one-line message.
impl From<Failure> for Diagnostic {
    fn from(failure: Failure) -> Diagnostic {
        Diagnostic {
            error_type: format!("pkgsum::{}", failure.0.kind()),
            error_message: failure.0.to_string(),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        .init();
    let config = Config::from_env()?;
    let client = client_from_env().await;
    let shared = Arc::new((config, client));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let shared = Arc::clone(&shared);
        async move {
            let (config, client) = shared.as_ref();
            let store_for = |bucket: &str| S3Store::new(client.clone(), bucket);
            apply_payload(&event.payload, store_for, config)
                .await
                .map_err(Failure)
        }
    }))
    .await
}
