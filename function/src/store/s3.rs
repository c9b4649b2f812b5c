//! The S3 backend on `aws-sdk-s3`, for AWS and S3-compatible stores.
//!
//! Configuration is the SDK's own (environment, profile, instance role):
//! `AWS_ENDPOINT_URL` points it at LocalStack or MinIO. Path-style
//! addressing is used whenever a custom endpoint is set (those stores
//! rarely serve virtual-host names) or `AWS_S3_FORCE_PATH_STYLE=true`.
//! Build one client per process and share it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::upload_part_copy::UploadPartCopyError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use bytes::Bytes;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::excerpt::Escaped;

use super::{
    Assembly, Bounded, ErrorKind, ObjectMeta, Op, Peeked, PutMode, PutOptions, Segment, Store,
    StoreError, StoreResult,
};

/// One bucket through one shared client.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    bucket: String,
    if_match: IfMatch,
    /// Whether the server refuses a part copy whose source no longer has
    /// the ETag in `x-amz-copy-source-if-match` (AWS S3 does); where it
    /// does not, an assembly checks its sources by HEAD.
    copy_pinned: bool,
    /// Set once the server answered UploadPartCopy with 501: assemblies
    /// are read and written whole from then on (shared by clones).
    no_part_copy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// How a server wants the ETag in `If-Match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IfMatch {
    /// As HTTP says and AWS S3 does: `"etag"`.
    #[default]
    Quoted,
    /// Without quotes: Ceph RGW 16 refuses the quoted form with 412.
    Bare,
}

impl IfMatch {
    /// `etag` as this server wants it in `If-Match`.
    fn header(self, etag: String) -> String {
        match self {
            IfMatch::Quoted => format!("\"{etag}\""),
            IfMatch::Bare => etag,
        }
    }
}

/// An ETag no object has, for the probes' conditions that must fail.
const NO_SUCH_ETAG: &str = "0123456789abcdef0123456789abcdef";

/// What a server does with conditional writes, as [`S3Store::probe`]
/// found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConditionalWrites {
    /// `If-None-Match: *` refuses to overwrite.
    pub create: bool,
    /// `If-Match` refuses a wrong ETag and accepts the right one, in
    /// this form.
    pub update: Option<IfMatch>,
    /// `x-amz-copy-source-if-match` refuses an UploadPartCopy from an
    /// object of another ETag (Ceph RGW 16 ignores it).
    pub copy_pinned: bool,
}

impl ConditionalWrites {
    /// Both honoured: several writers may share a repository.
    pub fn honoured(&self) -> bool {
        self.create && self.update.is_some()
    }
}

impl std::fmt::Display for ConditionalWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.create, self.update) {
            (true, Some(IfMatch::Quoted)) => f.write_str("conditional writes honoured"),
            (true, Some(IfMatch::Bare)) => f.write_str(
                "conditional writes honoured, If-Match with the ETag unquoted (as Ceph RGW 16)",
            ),
            (create, update) => write!(
                f,
                "conditional writes IGNORED (If-None-Match {}, If-Match {}): only one writer may run against this store",
                if create { "honoured" } else { "ignored" },
                if update.is_some() {
                    "honoured"
                } else {
                    "ignored"
                },
            ),
        }
    }
}

/// Whether the SDK talks to an endpoint other than AWS's (LocalStack, Ceph
/// RGW, SeaweedFS, MinIO...), whose conditional writes are worth a probe.
pub fn custom_endpoint() -> bool {
    std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some()
}

/// The one HTTPS client pkgsum's SDK clients use: rustls on ring
/// (Cargo.toml says why). A client configured by hand must be given it;
/// the SDK has no default here.
pub fn https_client() -> aws_sdk_s3::config::SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The standard AWS configuration (environment, profile, instance role),
/// with [`timeouts`]. The SDK's own retries (3 attempts) apply.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(https_client())
        .timeout_config(timeouts())
        .load()
        .await
}

/// Every client's time bounds: a store that does not answer fails the
/// request instead of hanging the pass.
pub fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        // Between bytes of an answer; above SQS's 20 s long poll.
        .read_timeout(Duration::from_secs(60))
        .build()
}

/// Builds the client from the standard AWS configuration.
pub async fn client_from_env() -> Client {
    client_from_config(&sdk_config().await)
}

/// Builds the S3 client from a loaded configuration (shared with other
/// services' clients, as `pkgsum poll` shares it with SQS).
pub fn client_from_config(config: &aws_config::SdkConfig) -> Client {
    let forced = std::env::var("AWS_S3_FORCE_PATH_STYLE")
        .map(|v| matches!(v.as_str(), "1" | "true" | "TRUE" | "yes"))
        .unwrap_or(false);
    let path_style = forced || config.endpoint_url().is_some();
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .interceptor(KeepAlive)
        .build();
    Client::from_conf(s3)
}

/// Asks for the connection to be kept, over plain HTTP: LocalStack's
/// gateway closes it after every answer unless the request says
/// `Connection: keep-alive` (localstack#6557), so each request there paid
/// a new TCP connection, about 45 an update. HTTP/1.1 keeps connections
/// anyway, so the header changes nothing elsewhere. Not over HTTPS, where
/// a store may speak HTTP/2 (which forbids the header; hyper would drop it
/// with a warning per request). Added after signing: hop-by-hop headers
/// are not signed.
#[derive(Debug)]
struct KeepAlive;

impl aws_sdk_s3::config::Intercept for KeepAlive {
    fn name(&self) -> &'static str {
        "KeepAlive"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextMut<'_>,
        _components: &aws_sdk_s3::config::RuntimeComponents,
        _cfg: &mut aws_sdk_s3::config::ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let request = context.request_mut();
        if asks_keep_alive(request.uri()) {
            request.headers_mut().insert("connection", "keep-alive");
        }
        Ok(())
    }
}

/// Whether a request to `uri` says `Connection: keep-alive` ([`KeepAlive`]).
fn asks_keep_alive(uri: &str) -> bool {
    uri.get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

impl S3Store {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3Store {
            client,
            bucket: bucket.into(),
            if_match: IfMatch::default(),
            copy_pinned: true,
            no_part_copy: Default::default(),
        }
    }

    /// The same bucket, spoken to as `found` says: its If-Match form, and
    /// whether copies must be checked by HEAD.
    pub fn with_probed(mut self, found: ConditionalWrites) -> Self {
        if let Some(form) = found.update {
            self.if_match = form;
        }
        self.copy_pinned = found.copy_pinned;
        self
    }

    /// Finds out what the server does with conditional writes, on a
    /// scratch key under the repository's `<prefix>.pkgsum/` (removed
    /// afterwards): whether `If-None-Match: *` refuses an overwrite,
    /// whether `If-Match` refuses a wrong ETag, and which form of the
    /// right one it accepts.
    pub async fn probe(&self, prefix: &str) -> StoreResult<ConditionalWrites> {
        let key = format!("{prefix}.pkgsum/probe-{:016x}", fastrand::u64(..));
        let found = self.probe_at(&key).await;
        // Best effort: a leftover scratch key is harmless (never a package).
        let _ = self.delete(&key).await;
        found
    }

    async fn probe_at(&self, key: &str) -> StoreResult<ConditionalWrites> {
        let body = Bytes::from_static(b"pkgsum probe\n");
        let put = |mode, form| {
            self.put_as(
                key,
                body.clone(),
                PutOptions {
                    mode,
                    ..PutOptions::default()
                },
                form,
            )
        };
        put(PutMode::Create, IfMatch::Quoted).await?;
        let refused = |result: StoreResult<String>| match result {
            Ok(_) => Ok(false),
            Err(err) if err.is_precondition() => Ok(true),
            Err(err) => Err(err),
        };
        let create = refused(put(PutMode::Create, IfMatch::Quoted).await)?;
        let wrong = PutMode::Update(NO_SUCH_ETAG.to_owned());
        let mut update = None;
        if refused(put(wrong, IfMatch::Quoted).await)? {
            let etag = self.head(key).await?.map(|m| m.etag).unwrap_or_default();
            for form in [IfMatch::Quoted, IfMatch::Bare] {
                if !refused(put(PutMode::Update(etag.clone()), form).await)? {
                    update = Some(form);
                    break;
                }
            }
        }
        let copy_pinned = self.copy_pin_probed(key, update.unwrap_or_default()).await;
        Ok(ConditionalWrites {
            create,
            update,
            copy_pinned,
        })
    }

    /// Whether an UploadPartCopy from `key` pinned to an ETag it does not
    /// have is refused (412), in a multipart upload aborted after. Any
    /// other answer, a copy made, 501 (no UploadPartCopy) or no multipart
    /// upload at all, is taken as no: assemblies then check their sources
    /// themselves.
    async fn copy_pin_probed(&self, key: &str, form: IfMatch) -> bool {
        let scratch = format!("{key}-copy");
        let created = self.create_upload(&scratch, PutOptions::default(), false);
        let Ok(id) = created.await else {
            return false;
        };
        let source = copy_source_of(&self.bucket, key);
        let wrong = form.header(NO_SUCH_ETAG.to_owned());
        let copied = self
            .part_copy((&scratch, &id, 1), &source, &wrong, 0..1)
            .await;
        self.abort_upload(&scratch, &id).await;
        match copied {
            Ok(_) => false,
            Err(err) => err
                .raw_response()
                .is_some_and(|r| r.status().as_u16() == 412),
        }
    }

    /// The store of `bucket`, ready to commit. On an endpoint other than
    /// AWS's, conditional writes are probed first (under `prefix`) and
    /// what was found is returned: Ceph RGW's If-Match dialect is then
    /// spoken, and a store that ignores them is named as such (one writer
    /// only). AWS S3 honours them and is not probed.
    pub async fn open(
        client: Client,
        bucket: &str,
        prefix: &str,
    ) -> StoreResult<(S3Store, Option<ConditionalWrites>)> {
        let store = S3Store::new(client, bucket);
        if !custom_endpoint() {
            return Ok((store, None));
        }
        let found = store.probe(prefix).await?;
        tracing::info!(bucket, %found, copy_pinned = found.copy_pinned, "conditional writes probed");
        Ok((store.with_probed(found), Some(found)))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }
}

impl S3Store {
    /// A PUT with `If-Match` in `form`.
    async fn put_as(
        &self,
        key: &str,
        body: Bytes,
        options: PutOptions,
        form: IfMatch,
    ) -> StoreResult<String> {
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
        if let Some(checksum) = options.checksum {
            request = request
                .content_md5(BASE64.encode(checksum.md5))
                .checksum_sha256(BASE64.encode(checksum.sha256));
        }
        request = match options.mode {
            PutMode::Overwrite => request,
            PutMode::Create => request.if_none_match("*"),
            PutMode::Update(etag) => request.if_match(form.header(etag)),
        };
        let out = request
            .send()
            .await
            .map_err(|e| self.error(Op::Put, key, e))?;
        Ok(unquote(out.e_tag()))
    }
}

impl S3Store {
    /// Sends the parts of multipart upload `id`, then completes it.
    async fn send_parts(
        &self,
        key: &str,
        id: &str,
        mut parts: super::Parts<'_>,
        mode: PutMode,
    ) -> StoreResult<String> {
        use futures::StreamExt as _;
        let mut completed = Vec::new();
        while let Some(part) = parts.next().await {
            let (body, checksum) = part.map_err(|why| {
                StoreError::new(Op::Put, self.location(key), ErrorKind::Other(why))
            })?;
            let number = i32::try_from(completed.len() + 1).unwrap_or(i32::MAX);
            let sha256 = BASE64.encode(checksum.sha256);
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(id)
                .part_number(number)
                .body(ByteStream::from(body))
                .content_md5(BASE64.encode(checksum.md5))
                .checksum_sha256(&sha256)
                .send()
                .await
                .map_err(|e| self.error(Op::Put, key, e))?;
            let part = CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag().map(str::to_owned))
                .checksum_sha256(sha256);
            completed.push(part.build());
        }
        self.complete_upload(key, id, completed, mode).await
    }

    /// Starts a multipart upload to `key` with `options`' metadata (and
    /// SHA-256 part checksums if `checksums`); returns its id.
    async fn create_upload(
        &self,
        key: &str,
        options: PutOptions,
        checksums: bool,
    ) -> StoreResult<String> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_content_type(options.content_type)
            .set_cache_control(options.cache_control);
        if checksums {
            create = create.checksum_algorithm(ChecksumAlgorithm::Sha256);
        }
        if !options.metadata.is_empty() {
            create = create.set_metadata(Some(options.metadata.into_iter().collect()));
        }
        let created = create
            .send()
            .await
            .map_err(|e| self.error(Op::Put, key, e))?;
        let Some(id) = created.upload_id() else {
            let why = "CreateMultipartUpload gave no upload id".to_owned();
            return Err(StoreError::new(
                Op::Put,
                self.location(key),
                ErrorKind::Other(why),
            ));
        };
        Ok(id.to_owned())
    }

    /// Completes multipart upload `id` of `completed` parts, under `mode`.
    async fn complete_upload(
        &self,
        key: &str,
        id: &str,
        completed: Vec<CompletedPart>,
        mode: PutMode,
    ) -> StoreResult<String> {
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(completed))
            .build();
        let mut complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(id)
            .multipart_upload(upload);
        complete = match mode {
            PutMode::Overwrite => complete,
            PutMode::Create => complete.if_none_match("*"),
            PutMode::Update(etag) => complete.if_match(self.if_match.header(etag)),
        };
        let out = complete
            .send()
            .await
            .map_err(|e| self.error(Op::Put, key, e))?;
        let etag = unquote(out.e_tag());
        if !etag.is_empty() {
            return Ok(etag);
        }
        // Ceph RGW's answer may carry no ETag: the object says.
        let written = self.head(key).await?;
        Ok(written.map(|m| m.etag).unwrap_or_default())
    }

    /// Aborts multipart upload `id`; a failure is logged (a lifecycle rule
    /// removes what is left).
    async fn abort_upload(&self, key: &str, id: &str) {
        let abort = self.client.abort_multipart_upload().bucket(&self.bucket);
        if let Err(err) = abort.key(key).upload_id(id).send().await {
            let err = self.error(Op::Delete, key, err);
            tracing::warn!(%err, "multipart upload not aborted; a lifecycle rule removes it");
        }
    }

    /// An SDK error as one readable line: the operation, the object, and
    /// the cause (see [`classify`]). The SDK's error stays behind it as
    /// source.
    fn error<E>(&self, op: Op, key: &str, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kind = classify(&err, &self.bucket);
        StoreError::new(op, self.location(key), kind).with_backend(err)
    }
}

/// Whether a whole body read with `meta` is not the object `meta` names:
/// a single PUT's ETag is the MD5 of its bytes (unless KMS encrypts it,
/// which the caller rules out), so a body of another length or digest was
/// torn from another version. LocalStack serves such answers while an
/// object is overwritten (measured: a body of one version under another's
/// ETag and size). A multipart ETag (`…-N`) or a partial read says
/// nothing.
fn torn(meta: &ObjectMeta, body: &[u8]) -> bool {
    use md5::Digest as _;
    let single_put = meta.etag.len() == 32 && meta.etag.bytes().all(|b| b.is_ascii_hexdigit());
    if !single_put || (body.len() as u64) < meta.size {
        return false;
    }
    let md5 = pkgsum_core::hex(&md5::Md5::digest(body));
    body.len() as u64 != meta.size || !md5.eq_ignore_ascii_case(&meta.etag)
}

/// Tells apart the causes people act on differently: a missing bucket,
/// denied access, missing or refused credentials, an endpoint that does
/// not answer, a timeout; anything else keeps the service's code and
/// message. Never the SDK's `Debug` form.
pub(crate) fn classify<E>(err: &SdkError<E, HttpResponse>, bucket: &str) -> ErrorKind
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match err {
        SdkError::TimeoutError(_) => ErrorKind::TimedOut(innermost(err)),
        SdkError::DispatchFailure(failure) => {
            if has_in_chain::<CredentialsError>(err) {
                ErrorKind::NoCredentials(innermost(err))
            } else if failure.is_timeout() {
                ErrorKind::TimedOut(innermost(err))
            } else if failure.is_io() {
                ErrorKind::Unreachable(format!("{}: {}", endpoint_name(), innermost(err)))
            } else {
                ErrorKind::Other(innermost(err))
            }
        }
        SdkError::ConstructionFailure(_) => {
            ErrorKind::Other(format!("cannot make the request: {}", innermost(err)))
        }
        _ => classify_answer(err, bucket),
    }
}

/// An error the service answered with: its status and error code.
fn classify_answer<E>(err: &SdkError<E, HttpResponse>, bucket: &str) -> ErrorKind
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().unwrap_or_default();
    let said = match err.message() {
        Some(message) if !message.is_empty() => format!("{code}: {message}"),
        _ if !code.is_empty() => code.to_owned(),
        _ => format!("HTTP {}", status.unwrap_or_default()),
    };
    match (status, code) {
        (_, "NoSuchBucket") => ErrorKind::NoSuchBucket(bucket.to_owned()),
        (Some(404), _) => ErrorKind::NotFound,
        (Some(412), _) => ErrorKind::Precondition,
        (Some(409), _) => ErrorKind::Conflict,
        (
            _,
            "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "ExpiredToken"
            | "InvalidToken"
            | "TokenRefreshRequired"
            | "InvalidClientTokenId"
            | "UnrecognizedClientException",
        ) => ErrorKind::BadCredentials(said),
        (Some(403), _) | (_, "AccessDenied" | "AccessDeniedException") => ErrorKind::Denied(said),
        (Some(400), _) => ErrorKind::Refused(said),
        (Some(301), _) | (_, "PermanentRedirect" | "AuthorizationHeaderMalformed") => {
            ErrorKind::Other(format!(
                "the bucket is in another region than the one configured (AWS_REGION): {said}"
            ))
        }
        (Some(status), _) => ErrorKind::Other(format!("HTTP {status}, {said}")),
        (None, _) => ErrorKind::Other(said),
    }
}

/// Any SDK error (S3's, SQS's) as one readable line.
pub fn error_line<E>(err: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify(err, "").to_string()
}

/// The endpoint the SDK talks to, for messages.
fn endpoint_name() -> String {
    std::env::var("AWS_ENDPOINT_URL_S3")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| "the AWS S3 endpoint".to_owned())
}

/// Whether an error of type `T` is somewhere behind `err`.
fn has_in_chain<T: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<T>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// The last message of an error chain: the SDK's outer layers say
/// "dispatch failure" or "io error", the innermost says what happened
/// ("Connection refused (os error 111)").
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}

/// The object's size from a `Content-Range` (`bytes 0-65535/123456`).
fn total_of_range(range: &str) -> Option<u64> {
    range.rsplit_once('/')?.1.trim().parse().ok()
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

/// The most a GET allocates up front from the size the store announces.
const PREALLOCATE_LIMIT: u64 = 1 << 30;

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
            Err(err) => match self.error(Op::Head, key, err) {
                e if e.is_not_found() => Ok(None),
                e => Err(e),
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
                return match self.error(Op::Get, key, err) {
                    e if e.is_not_found() => Ok(None),
                    e => Err(e),
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
        // Read into one buffer of the announced size: collecting the
        // chunks and joining them would hold the object twice.
        let mut body = Vec::with_capacity(meta.size.min(PREALLOCATE_LIMIT) as usize);
        let mut stream = out.body;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(|e| self.cut_short(Op::Get, key, &e))?
        {
            body.extend_from_slice(&chunk);
        }
        Ok(Some((Bytes::from(body), meta)))
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
                .map_err(|e| self.cut_short(Op::GetRange, key, &e))?
                .into_bytes()),
            // 416: the range starts at or past the end.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 416) =>
            {
                Ok(Bytes::new())
            }
            Err(err) => Err(self.error(Op::GetRange, key, err)),
        }
    }

    /// One ranged GET with `If-None-Match`. A server that ignores the
    /// condition sends the bytes (the caller compares ETags anyway); one
    /// that ignores the range is read no further than `len`.
    async fn peek(&self, key: &str, len: u64, unless: Option<&str>) -> StoreResult<Peeked> {
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes=0-{}", len.max(1) - 1))
            .set_if_none_match(unless.map(|etag| format!("\"{etag}\"")))
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                return match (status, self.error(Op::GetRange, key, err)) {
                    (Some(304), _) => Ok(Peeked::Unchanged),
                    (_, e) if e.is_not_found() => Ok(Peeked::Gone),
                    // 416: an empty object has no byte 0.
                    (Some(416), _) => super::peek_by_head(self, key, len, unless).await,
                    (_, e) => Err(e),
                };
            }
        };
        let size = out
            .content_range()
            .and_then(total_of_range)
            .or_else(|| out.content_length().map(|n| n.max(0) as u64))
            .unwrap_or(0);
        let md5_etag = !matches!(
            out.server_side_encryption(),
            Some(ServerSideEncryption::AwsKms | ServerSideEncryption::AwsKmsDsse)
        );
        let meta = ObjectMeta {
            key: key.to_owned(),
            size,
            etag: unquote(out.e_tag()),
            last_modified: to_system_time(out.last_modified()),
            metadata: to_btree(out.metadata()),
        };
        let mut first = Vec::with_capacity(len.min(size) as usize);
        let mut stream = out.body;
        while (first.len() as u64) < len
            && let Some(chunk) = stream
                .try_next()
                .await
                .map_err(|e| self.cut_short(Op::GetRange, key, &e))?
        {
            first.extend_from_slice(&chunk);
        }
        first.truncate(len as usize);
        if md5_etag && torn(&meta, &first) {
            let why = "the body is not the one its ETag names (the object changed while read)";
            return Err(StoreError::new(
                Op::GetRange,
                self.location(key),
                ErrorKind::CutShort(why.to_owned()),
            ));
        }
        Ok(Peeked::Found(meta, Bytes::from(first)))
    }

    /// One ranged GET of `limit + 1` bytes: a longer object shows by its
    /// size, and no more of it is read.
    async fn get_bounded(&self, key: &str, limit: u64) -> StoreResult<Option<Bounded>> {
        let want = limit.saturating_add(1);
        let peeked = self.peek(key, want, None).await.map_err(|mut err| {
            // Whole GETs are named so, whatever request made them.
            err.op = Op::Get;
            err
        })?;
        Ok(match peeked {
            Peeked::Gone | Peeked::Unchanged => None,
            Peeked::Found(meta, _) if meta.size > limit => Some(Bounded::TooLarge(meta)),
            Peeked::Found(meta, body) => Some(Bounded::Whole(body, meta)),
        })
    }

    async fn put(&self, key: &str, body: Bytes, options: PutOptions) -> StoreResult<String> {
        self.put_as(key, body, options, self.if_match).await
    }

    /// A multipart upload: created with the object's metadata, each part
    /// sent with its SHA-256 and MD5 (the store refuses a part that does
    /// not match), completed under `options.mode` (AWS honours
    /// `If-None-Match` and `If-Match` there; the caller's check before the
    /// upload stands where a store does not), aborted on any failure.
    async fn put_parts(
        &self,
        key: &str,
        parts: super::Parts<'_>,
        options: PutOptions,
    ) -> StoreResult<String> {
        let mode = options.mode.clone();
        let id = self.create_upload(key, options, true).await?;
        let sent = self.send_parts(key, &id, parts, mode).await;
        if sent.is_err() {
            self.abort_upload(key, &id).await;
        }
        sent
    }

    /// A multipart upload whose parts are the ranges of 5 MiB or more,
    /// copied inside the store (UploadPartCopy pinned to the source's
    /// ETag), and the bytes between them, each sent part at least 5 MiB
    /// (the rule for every part but the last): the bytes of a shorter
    /// range beside a copy are read to fill it. Completed under
    /// `options.mode`. An object under 5 MiB, one with no range that long,
    /// or a server without UploadPartCopy (501, remembered) gets the
    /// default: every range read and the whole written.
    async fn assemble(
        &self,
        key: &str,
        segments: Vec<Segment>,
        options: PutOptions,
    ) -> StoreResult<Assembly> {
        use std::sync::atomic::Ordering;
        let total: u64 = segments.iter().map(Segment::len).sum();
        let long_copy = segments
            .iter()
            .any(|s| matches!(s, Segment::Copy { .. }) && s.len() >= MIN_PART);
        if total < MIN_PART || !long_copy || self.no_part_copy.load(Ordering::Relaxed) {
            return super::assemble_by_get(self, key, segments, options).await;
        }
        let mode = options.mode.clone();
        let id = self.create_upload(key, options.clone(), false).await?;
        match self.assemble_parts(key, &id, segments.clone(), mode).await {
            Ok(assembly) => Ok(assembly),
            Err(failed) => {
                self.abort_upload(key, &id).await;
                match failed {
                    Failed::Store(err) => Err(err),
                    Failed::NoPartCopy => {
                        tracing::debug!(key, "the store has no UploadPartCopy");
                        self.no_part_copy.store(true, Ordering::Relaxed);
                        super::assemble_by_get(self, key, segments, options).await
                    }
                }
            }
        }
    }

    /// 5 MiB, until the server has answered an UploadPartCopy with 501.
    fn copies_at_least(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        (!self.no_part_copy.load(Ordering::Relaxed)).then_some(MIN_PART)
    }

    async fn delete(&self, key: &str) -> StoreResult<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error(Op::Delete, key, e))?;
        Ok(())
    }

    async fn delete_if(&self, key: &str, etag: &str) -> StoreResult<()> {
        // The HEAD refuses a changed object where the store ignores
        // If-Match on DELETE; If-Match closes the window where it does not.
        let refused = |kind| StoreError::new(Op::Delete, self.location(key), kind);
        match self.head(key).await? {
            None => return Err(refused(ErrorKind::NotFound)),
            Some(meta) if meta.etag != etag => return Err(refused(ErrorKind::Precondition)),
            Some(_) => {}
        }
        let sent = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(self.if_match.header(etag.to_owned()))
            .send()
            .await;
        match sent {
            Ok(_) => Ok(()),
            // LocalStack answers 501 to If-Match on DELETE: the HEAD
            // above is all the check it gets.
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 501) =>
            {
                tracing::debug!(key, "the store does not take If-Match on DELETE");
                self.delete(key).await
            }
            Err(err) => Err(self.error(Op::Delete, key, err)),
        }
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
            let page = page.map_err(|e| self.error(Op::List, prefix, e))?;
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

    /// CopyObject inside the bucket, pinned to the source's ETag
    /// (`x-amz-copy-source-if-match`), keeping its metadata. Ceph RGW
    /// ignores that header, so the copy's ETag is compared too: a single
    /// PUT's ETag is its bytes' MD5 on every S3 server, and a copy of
    /// other bytes has another. Such a copy is deleted and refused.
    async fn copy(&self, from: &str, to: &str, etag: &str) -> StoreResult<String> {
        let source = copy_source_of(&self.bucket, from);
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .copy_source_if_match(match self.if_match {
                IfMatch::Quoted => format!("\"{etag}\""),
                IfMatch::Bare => etag.to_owned(),
            })
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Copy)
            .send()
            .await
            .map_err(|e| self.error(Op::Copy, from, e))?;
        let copied = unquote(copied.copy_object_result().and_then(|r| r.e_tag()));
        let single_put = !etag.contains('-');
        if single_put && copied != etag {
            self.delete(to).await?;
            return Err(StoreError::new(
                Op::Copy,
                self.location(from),
                ErrorKind::Precondition,
            ));
        }
        Ok(copied)
    }

    fn location(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, Escaped(key))
    }
}

/// The largest object one CopyObject copies (S3's limit).
pub const MAX_COPY: u64 = 5 << 30;

/// An object to copy from, in any bucket of the same endpoint.
#[derive(Debug, Clone, Copy)]
pub struct CopySource<'a> {
    pub store: &'a S3Store,
    pub key: &'a str,
    /// The ETag it was judged at: the copy happens only while it has it.
    pub etag: &'a str,
    pub size: u64,
}

/// How to copy: an object larger than `parts_above` is copied in parts
/// of `part_size` (UploadPartCopy).
#[derive(Debug, Clone, Copy)]
pub struct Copying {
    pub parts_above: u64,
    pub part_size: u64,
}

impl Default for Copying {
    fn default() -> Self {
        Copying {
            parts_above: MAX_COPY,
            part_size: 512 << 20,
        }
    }
}

impl S3Store {
    /// Copies `source` to `to` inside the store (no byte passes through
    /// pkgsum), with `options`' metadata and content type replacing the
    /// source's, written under `options.mode`. The source is pinned to its
    /// ETag (a precondition error once it has another); where the store
    /// ignores that (Ceph RGW), a single-PUT source's copy is checked by
    /// its ETag, and removed if it is another version's.
    pub async fn copy_in(
        &self,
        source: CopySource<'_>,
        to: &str,
        options: PutOptions,
        copying: Copying,
    ) -> StoreResult<String> {
        if source.size <= copying.parts_above.min(MAX_COPY) {
            return self.copy_whole(source, to, options).await;
        }
        let mode = options.mode.clone();
        let id = self.create_upload(to, options, false).await?;
        let copied = self
            .copy_parts(source, to, &id, copying.part_size, mode)
            .await;
        if copied.is_err() {
            self.abort_upload(to, &id).await;
        }
        copied
    }

    /// `x-amz-copy-source` and its `-if-match` for `source`.
    fn copy_source(source: &CopySource<'_>) -> (String, String) {
        let from = copy_source_of(&source.store.bucket, source.key);
        let pinned = source.store.if_match.header(source.etag.to_owned());
        (from, pinned)
    }

    /// One CopyObject; a store that refuses a condition on the copy's
    /// destination (LocalStack: 501) gets the copy without it, the check
    /// the caller made before standing.
    async fn copy_whole(
        &self,
        source: CopySource<'_>,
        to: &str,
        options: PutOptions,
    ) -> StoreResult<String> {
        let (from, pinned) = Self::copy_source(&source);
        let request = |mode: &PutMode| {
            let request = self
                .client
                .copy_object()
                .bucket(&self.bucket)
                .key(to)
                .copy_source(&from)
                .copy_source_if_match(&pinned)
                .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
                .set_metadata(Some(options.metadata.clone().into_iter().collect()))
                .set_content_type(options.content_type.clone())
                .set_cache_control(options.cache_control.clone());
            match mode {
                PutMode::Overwrite => request,
                PutMode::Create => request.if_none_match("*"),
                PutMode::Update(etag) => request.if_match(self.if_match.header(etag.clone())),
            }
        };
        let sent = match request(&options.mode).send().await {
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 501) =>
            {
                tracing::debug!(to, "the store takes no condition on CopyObject");
                request(&PutMode::Overwrite).send().await
            }
            sent => sent,
        };
        let copied = sent.map_err(|e| source.store.error(Op::Copy, source.key, e))?;
        let copied = unquote(copied.copy_object_result().and_then(|r| r.e_tag()));
        if !source.etag.contains('-') && copied != source.etag {
            self.delete(to).await?;
            return Err(StoreError::new(
                Op::Copy,
                source.store.location(source.key),
                ErrorKind::Precondition,
            ));
        }
        Ok(copied)
    }

    /// The parts of multipart upload `id`, each an UploadPartCopy of a
    /// range of `source`, then the completion under `mode`.
    async fn copy_parts(
        &self,
        source: CopySource<'_>,
        to: &str,
        id: &str,
        part_size: u64,
        mode: PutMode,
    ) -> StoreResult<String> {
        let (from, pinned) = Self::copy_source(&source);
        // At most 10,000 parts, each at least 5 MiB and at most 5 GiB.
        let part = part_size
            .max(source.size.div_ceil(MAX_PARTS as u64))
            .clamp(MIN_PART, MAX_COPY);
        let mut completed = Vec::new();
        let mut start = 0;
        while start < source.size {
            let end = (start + part).min(source.size);
            let number = i32::try_from(completed.len() + 1).unwrap_or(i32::MAX);
            let done = self
                .part_copy((to, id, number), &from, &pinned, start..end)
                .await
                .map_err(|e| source.store.error(Op::Copy, source.key, e))?;
            completed.push(done);
            start = end;
        }
        self.complete_upload(to, id, completed, mode).await
    }

    /// One UploadPartCopy: bytes `range` of the copy source `from`
    /// (`bucket/key`), only while it has the ETag `pinned` (in the form
    /// the server wants), as part `number` of upload `id` of `to`.
    async fn part_copy(
        &self,
        (to, id, number): (&str, &str, i32),
        from: &str,
        pinned: &str,
        range: Range<u64>,
    ) -> Result<CompletedPart, SdkError<UploadPartCopyError, HttpResponse>> {
        let out = self
            .client
            .upload_part_copy()
            .bucket(&self.bucket)
            .key(to)
            .upload_id(id)
            .part_number(number)
            .copy_source(from)
            .copy_source_if_match(pinned)
            .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
            .customize()
            .mutate_request(empty_body)
            .send()
            .await?;
        let etag = out.copy_part_result().and_then(|r| r.e_tag());
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(etag.map(str::to_owned));
        Ok(part.build())
    }
}

/// Says the body of a request without one is empty: Ceph RGW answers an
/// UploadPartCopy without `Content-Length` with 411.
fn empty_body(request: &mut aws_sdk_s3::config::http::HttpRequest) {
    request.headers_mut().insert("content-length", "0");
}

/// S3's smallest part, but for the last.
const MIN_PART: u64 = 5 << 20;

/// Bytes gathered before they are sent as one part of an assembly.
const SEND_PART: usize = 8 << 20;

/// S3's most parts in one upload.
const MAX_PARTS: usize = 10_000;

/// Why an assembly's multipart upload stopped.
enum Failed {
    /// The server answered UploadPartCopy with 501.
    NoPartCopy,
    Store(StoreError),
}

impl From<StoreError> for Failed {
    fn from(err: StoreError) -> Self {
        Failed::Store(err)
    }
}

/// An assembly's parts as they are made, and what they moved.
struct Assembling<'a> {
    key: &'a str,
    id: &'a str,
    parts: Vec<CompletedPart>,
    pending: Vec<u8>,
    moved: Assembly,
    /// The objects copied from, with the ETag each was pinned to.
    sources: BTreeSet<(String, String)>,
}

impl S3Store {
    /// The parts of assembly `id` of `key`, then its completion.
    async fn assemble_parts(
        &self,
        key: &str,
        id: &str,
        segments: Vec<Segment>,
        mode: PutMode,
    ) -> Result<Assembly, Failed> {
        let mut at = Assembling {
            key,
            id,
            parts: Vec::new(),
            pending: Vec::new(),
            moved: Assembly::default(),
            sources: Default::default(),
        };
        let count = segments.len();
        for (i, segment) in segments.into_iter().enumerate() {
            match segment {
                Segment::Bytes(bytes) => at.pending.extend_from_slice(&bytes),
                Segment::Copy {
                    key: from,
                    etag,
                    range,
                } => {
                    let last = i + 1 == count;
                    self.add_copy(&mut at, &from, &etag, range, last).await?;
                }
            }
            if at.pending.len() >= SEND_PART {
                self.send_pending(&mut at).await?;
            }
        }
        if !at.pending.is_empty() || at.parts.is_empty() {
            self.send_pending(&mut at).await?;
        }
        if !self.copy_pinned {
            self.sources_unchanged(&at.sources).await?;
        }
        let etag = self.complete_upload(key, id, at.parts, mode).await?;
        Ok(Assembly { etag, ..at.moved })
    }

    /// Refuses an assembly where the store ignores
    /// x-amz-copy-source-if-match (Ceph RGW) and a source has changed:
    /// each must still have its ETag after its copies (a change before a
    /// copy stays visible after it).
    async fn sources_unchanged(&self, sources: &BTreeSet<(String, String)>) -> Result<(), Failed> {
        for (from, etag) in sources {
            let now = self.head(from).await?;
            if now.is_none_or(|m| &m.etag != etag) {
                let location = self.location(from);
                return Err(StoreError::new(Op::Copy, location, ErrorKind::Precondition).into());
            }
        }
        Ok(())
    }

    /// Adds `range` of `from` (pinned to `etag`): bytes read to make the
    /// waiting bytes a whole part, then a copy inside the store of what
    /// is left if that is a part's worth or the `last` part (which may be
    /// short), else its bytes read too.
    async fn add_copy(
        &self,
        at: &mut Assembling<'_>,
        from: &str,
        etag: &str,
        range: Range<u64>,
        last: bool,
    ) -> Result<(), Failed> {
        let mut start = range.start;
        let short = (at.pending.len() as u64) < MIN_PART;
        if !at.pending.is_empty() && short {
            let take = (MIN_PART - at.pending.len() as u64).min(range.end - start);
            let bytes = super::read_range(self, from, start..start + take, etag).await?;
            at.moved.received += take;
            at.pending.extend_from_slice(&bytes);
            start += take;
        }
        let rest = range.end.saturating_sub(start);
        if rest == 0 {
            return Ok(());
        }
        if rest < MIN_PART && !last {
            let bytes = super::read_range(self, from, start..range.end, etag).await?;
            at.moved.received += rest;
            at.pending.extend_from_slice(&bytes);
            return Ok(());
        }
        if !at.pending.is_empty() {
            self.send_pending(at).await?;
        }
        // Parts of at most 5 GiB, as even as they come.
        let count = rest.div_ceil(MAX_COPY);
        let each = rest.div_ceil(count);
        while start < range.end {
            let end = (start + each).min(range.end);
            self.copy_part(at, from, etag, start..end).await?;
            start = end;
        }
        Ok(())
    }

    /// The number of the next part of `at`, unless S3's limit is reached.
    fn next_part(&self, at: &Assembling<'_>) -> Result<i32, Failed> {
        if at.parts.len() >= MAX_PARTS {
            let why = format!("an assembly of more than {MAX_PARTS} parts");
            let location = self.location(at.key);
            return Err(StoreError::new(Op::Put, location, ErrorKind::Other(why)).into());
        }
        Ok(i32::try_from(at.parts.len() + 1).unwrap_or(i32::MAX))
    }

    /// Sends the waiting bytes as the next part.
    async fn send_pending(&self, at: &mut Assembling<'_>) -> Result<(), Failed> {
        use md5::Digest as _;
        let number = self.next_part(at)?;
        let body = std::mem::take(&mut at.pending);
        let md5 = BASE64.encode(md5::Md5::digest(&body));
        let len = body.len() as u64;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(at.key)
            .upload_id(at.id)
            .part_number(number)
            .content_md5(md5)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error(Op::Put, at.key, e))?;
        at.moved.sent += len;
        let part = CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag().map(str::to_owned));
        at.parts.push(part.build());
        Ok(())
    }

    /// Copies `range` of `from` (pinned to `etag`) as the next part.
    async fn copy_part(
        &self,
        at: &mut Assembling<'_>,
        from: &str,
        etag: &str,
        range: Range<u64>,
    ) -> Result<(), Failed> {
        let number = self.next_part(at)?;
        let source = copy_source_of(&self.bucket, from);
        let pinned = self.if_match.header(etag.to_owned());
        let copied = self
            .part_copy((at.key, at.id, number), &source, &pinned, range.clone())
            .await;
        let part = match copied {
            Ok(part) => part,
            Err(err)
                if err
                    .raw_response()
                    .is_some_and(|r| r.status().as_u16() == 501) =>
            {
                return Err(Failed::NoPartCopy);
            }
            Err(err) => return Err(self.error(Op::Copy, from, err).into()),
        };
        at.moved.copied += range.end - range.start;
        at.sources.insert((from.to_owned(), etag.to_owned()));
        at.parts.push(part);
        Ok(())
    }
}

/// `key` of `bucket` as `x-amz-copy-source` names it.
fn copy_source_of(bucket: &str, key: &str) -> String {
    format!("{bucket}/{}", encode_copy_source(key))
}

/// A key as `x-amz-copy-source` takes it: percent-encoded but for `/`
/// and the characters URLs leave alone.
fn encode_copy_source(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

impl S3Store {
    /// An answer whose body failed part way: named so, so callers read
    /// again (the object was most likely replaced or deleted meanwhile).
    fn cut_short(
        &self,
        op: Op,
        key: &str,
        error: &(dyn std::error::Error + 'static),
    ) -> StoreError {
        StoreError::new(
            op,
            self.location(key),
            ErrorKind::CutShort(innermost(error)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::error::ErrorMetadata;

    /// Keep-alive is asked for over plain HTTP (LocalStack, a local RGW),
    /// never over HTTPS, where HTTP/2 forbids the header.
    #[test]
    fn keep_alive_is_asked_over_plain_http_only() {
        assert!(asks_keep_alive("http://127.0.0.1:4566/bucket/key"));
        assert!(asks_keep_alive("HTTP://rgw.local/bucket"));
        assert!(!asks_keep_alive("https://bucket.s3.amazonaws.com/key"));
        assert!(!asks_keep_alive("http:"));
        assert!(!asks_keep_alive(""));
    }

    /// A body read whole must be the one its ETag names; a multipart ETag
    /// or a partial read cannot say.
    #[test]
    fn a_torn_body_is_told_apart() {
        let meta = |body: &[u8], etag: &str| ObjectMeta {
            key: "All/a-1.tgz".to_owned(),
            size: body.len() as u64,
            etag: etag.to_owned(),
            last_modified: None,
            metadata: BTreeMap::new(),
        };
        let (a, b) = (b"version one".as_slice(), b"version two".as_slice());
        let etag_a = super::super::Checksum::of(a).md5_hex();
        assert!(!torn(&meta(a, &etag_a), a));
        assert!(!torn(&meta(a, &etag_a.to_uppercase()), a));
        assert!(torn(&meta(a, &etag_a), b), "same length, other bytes");
        let longer = meta(b"version one!", &etag_a);
        assert!(!torn(&longer, a), "a partial read says nothing");
        assert!(torn(&meta(&a[..5], &etag_a), a), "longer than its size");
        assert!(!torn(&meta(a, "0123456789abcdef0123456789abcdef-2"), b));
        assert!(!torn(&meta(a, "not-an-md5"), b));
    }
    use aws_sdk_s3::operation::get_object::GetObjectError;
    use aws_sdk_s3::primitives::SdkBody;

    #[test]
    fn the_size_is_read_from_a_content_range() {
        assert_eq!(total_of_range("bytes 0-65535/123456"), Some(123456));
        assert_eq!(total_of_range("bytes 0-9/10"), Some(10));
        // An unknown length, or no range at all: the caller falls back
        // to Content-Length.
        assert_eq!(total_of_range("bytes 0-9/*"), None);
        assert_eq!(total_of_range("garbage"), None);
    }

    /// An error as S3 answers it: a status and an error code.
    fn answered(status: u16, code: &str, message: &str) -> SdkError<GetObjectError, HttpResponse> {
        let meta = ErrorMetadata::builder().code(code).message(message).build();
        let response = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
        SdkError::service_error(GetObjectError::generic(meta), response)
    }

    #[test]
    fn answers_are_told_apart_by_status_and_code() {
        let kind = |status, code| classify(&answered(status, code, "said so"), "b");
        assert_eq!(
            kind(404, "NoSuchBucket"),
            ErrorKind::NoSuchBucket("b".into())
        );
        assert_eq!(kind(404, "NoSuchKey"), ErrorKind::NotFound);
        assert_eq!(kind(412, "PreconditionFailed"), ErrorKind::Precondition);
        assert_eq!(kind(409, "ConditionalRequestConflict"), ErrorKind::Conflict);
        assert_eq!(
            kind(403, "AccessDenied"),
            ErrorKind::Denied("AccessDenied: said so".into())
        );
        assert_eq!(
            kind(403, "InvalidAccessKeyId"),
            ErrorKind::BadCredentials("InvalidAccessKeyId: said so".into())
        );
        assert_eq!(
            kind(403, "SignatureDoesNotMatch"),
            ErrorKind::BadCredentials("SignatureDoesNotMatch: said so".into())
        );
        assert!(
            matches!(kind(301, "PermanentRedirect"), ErrorKind::Other(m) if m.contains("AWS_REGION"))
        );
        assert_eq!(
            kind(503, "SlowDown"),
            ErrorKind::Other("HTTP 503, SlowDown: said so".into())
        );
        let err = StoreError::new(Op::Get, "s3://b/k", kind(403, "AccessDenied"));
        assert_eq!(
            err.to_string(),
            "GET s3://b/k: access denied (AccessDenied: said so)"
        );
    }
}
