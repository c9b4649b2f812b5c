#![recursion_limit = "256"]
//! The Lambda function (`bootstrap` on provided.al2023): a thin shell that
//! builds the S3 client once, reads `PKGSUM_*` settings, logs JSON, and
//! hands each payload to [`pkgsum::invoke::invoke`].

use std::sync::Arc;

use lambda_runtime::{Error, LambdaEvent, service_fn};
use pkgsum::repo::Config;
use pkgsum::store::s3::{S3Store, client_from_env};
use serde_json::Value;

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
    let config = Config::from_env().map_err(Error::from)?;
    let client = client_from_env().await;
    let shared = Arc::new((config, client));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let shared = Arc::clone(&shared);
        async move {
            let (config, client) = shared.as_ref();
            let store_for = |bucket: &str| S3Store::new(client.clone(), bucket);
            pkgsum::invoke::invoke(&event.payload, store_for, config)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
