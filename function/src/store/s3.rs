//! The S3 backend on `aws-sdk-s3`, for AWS and S3-compatible stores.
//!
//! Configuration is the SDK's own (environment, profile, instance role):
//! `AWS_ENDPOINT_URL` points it at LocalStack or MinIO. Path-style
//! addressing is used whenever a custom endpoint is set (those stores
//! rarely serve virtual-host names) or `AWS_S3_FORCE_PATH_STYLE=true`.
//! Build one client per process and share it.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::SystemTime;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;

use super::{ObjectMeta, PutMode, PutOptions, Store, StoreError, StoreResult};

/// One bucket through one shared client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
}

/// Builds the client from the standard AWS configuration.
pub async fn client_from_env() -> Client {
    let config = aws_config::load_from_env().await;
    let forced = std::env::var("AWS_S3_FORCE_PATH_STYLE")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
        .unwrap_or(false);
    let path_style = forced || config.endpoint_url().is_some();
    let s3 = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(path_style)
        .build();
    Client::from_conf(s3)
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// Maps an SDK error by its HTTP status: 404, 412 and 409 have meanings
/// the indexer acts on; the rest keep the SDK's full message.
fn map_error<E>(key: &str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let key = key.to_owned();
    match status {
        Some(404) => StoreError::NotFound { key },
        Some(412) => StoreError::Precondition { key },
        Some(409) => StoreError::Conflict { key },
        _ => StoreError::Other {
            key,
            message: DisplayErrorContext(&err).to_string(),
        },
    }
}

fn unquote(etag: Option<&str>) -> String {
    etag.unwrap_or_default().trim_matches('"').to_owned()
}

fn to_system_time(t: Option<&aws_sdk_s3::primitives::DateTime>) -> Option<SystemTime> {
    t.and_then(|t| SystemTime::try_from(*t).ok())
}

fn to_btree(metadata: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    metadata
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

impl Store for S3Store {
    async fn head(&self, key: &str) -> StoreResult<Option<ObjectMeta>> {
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_owned(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                etag: unquote(out.e_tag()),
                last_modified: to_system_time(out.last_modified()),
                metadata: to_btree(out.metadata()),
            })),
            Err(err) => match map_error(key, err) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn get(&self, key: &str) -> StoreResult<Option<(Bytes, ObjectMeta)>> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                return match map_error(key, err) {
                    StoreError::NotFound { .. } => Ok(None),
                    other => Err(other),
                };
            }
        };
        let meta = ObjectMeta {
            key: key.to_owned(),
            size: out.content_length().unwrap_or(0).max(0) as u64,
            etag: unquote(out.e_tag()),
            last_modified: to_system_time(out.last_modified()),
            metadata: to_btree(out.metadata()),
        };
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::other(key, e))?
            .into_bytes();
        Ok(Some((body, meta)))
    }

    async fn get_range(&self, key: &str, range: Range<u64>, etag: &str) -> StoreResult<Bytes> {
        if range.start >= range.end {
            return Ok(Bytes::new());
        }
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .if_match(format!("\"{etag}\""))
            .send()
            .await;
        match result {
            Ok(out) => Ok(out
                .body
                .collect()
                .await
                .map_err(|e| StoreError::other(key, e))?
                .into_bytes()),
            // 416: the range starts at or past the end.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 416) =>
            {
                Ok(Bytes::new())
            }
            Err(err) => Err(map_error(key, err)),
        }
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        let mut request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_content_type(options.content_type)
            .set_cache_control(options.cache_control);
        if !options.metadata.is_empty() {
            request = request.set_metadata(Some(options.metadata.into_iter().collect()));
        }
        request = match options.mode {
            PutMode::Overwrite => request,
            PutMode::Create => request.if_none_match("*"),
            PutMode::Update(etag) => request.if_match(format!("\"{etag}\"")),
        };
        let out = request.send().await.map_err(|e| map_error(key, e))?;
        Ok(unquote(out.e_tag()))
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_error(key, e))?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<ObjectMeta>> {
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_error(prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                out.push(ObjectMeta {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    etag: unquote(object.e_tag()),
                    last_modified: to_system_time(object.last_modified()),
                    metadata: BTreeMap::new(),
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}
