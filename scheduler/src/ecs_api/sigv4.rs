//! AWS Signature Version 4 verification (server side) for the ECS-compatible
//! API; pure, no I/O, no panics on any input.
//!
//! # API
//!
//! ```text
//! let verified = sigv4::verify(
//!     &sigv4::Request::from_parts(&parts, &body), // or a `Request { method, path, query, headers, body }`
//!     SystemTime::now(),
//!     &sigv4::Policy::ecs(None),
//!     |access_key_id| credentials.secret_for(access_key_id), // -> Option<SecretKey>
//! )?; // Err(SigV4Error): answer `err.http_status()` with `{"__type": err.aws_code(), "message": err.to_string()}`
//! ```
//!
//! # What is checked, in this order
//!
//! 1. `Authorization` absent → [`SigV4Error::MissingAuthenticationToken`] (403).
//! 2. The header parses (`AWS4-HMAC-SHA256`, then `Credential=`, `SignedHeaders=`,
//!    `Signature=` in any order, separated by `,` and/or whitespace, each exactly once), the
//!    credential has five `/`-separated non-empty parts ending in `aws4_request`, the
//!    signed-header names are valid and include `host`, `x-amz-date` is present once and
//!    is `YYYYMMDDTHHMMSSZ`, and the scope's date is its date; otherwise
//!    [`SigV4Error::IncompleteSignature`] (400).
//! 3. The scope's service is [`Policy::service`] and, when [`Policy::region`] is set, its
//!    region is that one; otherwise [`SigV4Error::SignatureDoesNotMatch`] (403) with AWS's
//!    "Credential should be scoped to …" messages.
//! 4. `x-amz-date` is within [`Policy::max_skew`] of `now`, either way; otherwise
//!    [`SigV4Error::RequestExpired`] (400).
//! 5. Only then is the secret looked up, exactly once: `None` →
//!    [`SigV4Error::InvalidClientTokenId`] (403). So malformed, mis-scoped and expired
//!    requests never cost a lookup, and (as AWS) an unknown key is reported before the
//!    signature is looked at.
//! 6. The signature is recomputed and compared in constant time →
//!    [`SigV4Error::SignatureDoesNotMatch`] (403) when it differs.
//!
//! # Canonical request
//!
//! - Method as given (upper-case by HTTP clients).
//! - Canonical URI: the path as received (already percent-encoded once by the client) with
//!   botocore's normalisation (dot segments removed, empty segments dropped, a trailing `/`
//!   kept), then each segment URI-encoded again (unreserved `A-Za-z0-9-_.~` kept): the
//!   "double encoding" every AWS service but S3 uses. ECS's path is `/`.
//! - Canonical query: each `k=v` pair percent-decoded and re-encoded (`+` is a literal
//!   plus, an invalid `%` escape a literal `%`), sorted by encoded key then value.
//! - Canonical headers: the names listed in `SignedHeaders`, in that order (signers sort
//!   them; what was signed is what is verified), each `name:value` where the value is every
//!   occurrence trimmed, joined by `,`, with runs of spaces/tabs collapsed to one space
//!   (bytes, so obs-text is hashed as received). A
//!   listed header that is absent has the empty value (the signature then fails). Headers
//!   not listed (e.g. `user-agent`, which botocore never signs) do not matter.
//! - Payload hash: the `x-amz-content-sha256` header when present, otherwise the SHA-256 of
//!   the body. When the header is present it must equal the body's SHA-256 (hex, any case):
//!   a header naming another body's hash would let a captured request carry a new body, so
//!   `UNSIGNED-PAYLOAD` and a mismatch are [`SigV4Error::SignatureDoesNotMatch`]. The body is
//!   therefore always authenticated.
//!
//! Not supported (documented, not needed by the aws CLI or boto3): the `Date` header as a
//! fallback for `x-amz-date`, presigned query-string authentication, `x-amz-security-token`
//! (session credentials; the caller may reject requests carrying one).
//!
//! # Tests
//!
//! AWS's published test-suite vectors, a request signed by real botocore, every error, and
//! property tests (never panic; a validly signed random request verifies; any change to
//! the body, signature, a signed header, the date or the scope fails). The property tests
//! run `BERTH_FUZZ_CASES` cases each (default 256); the long run is
//!
//! ```text
//! BERTH_FUZZ_CASES=1000000 nice -n 19 cargo test --release -p berth-scheduler ecs_api::
//! ```

use std::fmt;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::{Zeroize, Zeroizing};

/// The only algorithm SigV4 defines.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The credential scope's terminator.
const TERMINATOR: &str = "aws4_request";

/// AWS's default tolerance between the request's date and the server's clock.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// The SHA-256 of the empty string, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const SIGNATURE_MISMATCH: &str = "The request signature we calculated does not match the \
     signature you provided. Check your AWS Secret Access Key and signing method. Consult \
     the service documentation for details.";

/// The parts of an HTTP request the signature covers, as received.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method (`POST` for AWS JSON 1.1).
    pub method: &'a str,
    /// The request target's path, as received (still percent-encoded).
    pub path: &'a str,
    /// The request target's query string without `?`, as received (`""` when none).
    pub query: &'a str,
    /// All request headers.
    pub headers: &'a http::HeaderMap,
    /// The complete body.
    pub body: &'a [u8],
}

impl<'a> Request<'a> {
    /// The request as hyper/http received it: path and query from the URI.
    pub fn from_parts(parts: &'a http::request::Parts, body: &'a [u8]) -> Self {
        Request {
            method: parts.method.as_str(),
            path: parts.uri.path(),
            query: parts.uri.query().unwrap_or(""),
            headers: &parts.headers,
            body,
        }
    }
}

/// What the server accepts.
#[derive(Debug, Clone)]
pub struct Policy {
    /// The service the credential must be scoped to (`"ecs"`).
    pub service: &'static str,
    /// The one region accepted; `None` accepts any region.
    pub region: Option<String>,
    /// The largest accepted difference between `x-amz-date` and `now`, either way.
    pub max_skew: Duration,
}

impl Policy {
    /// ECS's policy: service `ecs`, the given region (or any), 15 minutes of skew.
    pub fn ecs(region: Option<String>) -> Self {
        Policy {
            service: "ecs",
            region,
            max_skew: DEFAULT_MAX_SKEW,
        }
    }
}

impl Default for Policy {
    fn default() -> Self {
        Policy::ecs(None)
    }
}

/// Who signed a request that verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The access key id from the credential scope (its secret signed the request).
    pub access_key_id: String,
    /// The region from the credential scope.
    pub region: String,
}

/// A secret access key. Its bytes are zeroed on drop and never printed by `Debug`.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<Vec<u8>>);

impl SecretKey {
    /// Wraps a secret access key's bytes.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        SecretKey(Zeroizing::new(secret.into()))
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for SecretKey {
    fn from(s: &str) -> Self {
        SecretKey::new(s.as_bytes())
    }
}

impl From<String> for SecretKey {
    fn from(s: String) -> Self {
        SecretKey::new(s.into_bytes())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Why a request's signature was not accepted; each maps to AWS's common error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header or the date is malformed, or a required part is missing.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The access key id is unknown.
    #[error("The security token included in the request is invalid.")]
    InvalidClientTokenId,
    /// The signature is wrong, or the credential is scoped to another service or region.
    #[error("{0}")]
    SignatureDoesNotMatch(String),
    /// `x-amz-date` is too far from the server's clock.
    #[error("{0}")]
    RequestExpired(String),
}

impl SigV4Error {
    /// AWS's error code, for the body's `__type`.
    pub fn aws_code(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthenticationToken => "MissingAuthenticationToken",
            SigV4Error::IncompleteSignature(_) => "IncompleteSignature",
            SigV4Error::InvalidClientTokenId => "InvalidClientTokenId",
            SigV4Error::SignatureDoesNotMatch(_) => "SignatureDoesNotMatch",
            SigV4Error::RequestExpired(_) => "RequestExpired",
        }
    }

    /// The HTTP status AWS answers this error with.
    pub fn http_status(&self) -> u16 {
        match self {
            SigV4Error::MissingAuthenticationToken
            | SigV4Error::InvalidClientTokenId
            | SigV4Error::SignatureDoesNotMatch(_) => 403,
            SigV4Error::IncompleteSignature(_) | SigV4Error::RequestExpired(_) => 400,
        }
    }

    fn mismatch() -> Self {
        SigV4Error::SignatureDoesNotMatch(SIGNATURE_MISMATCH.to_string())
    }
}

fn incomplete(msg: impl Into<String>) -> SigV4Error {
    SigV4Error::IncompleteSignature(msg.into())
}

/// The `Authorization` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authorization<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    /// The `SignedHeaders` value, verbatim (it is part of the canonical request).
    signed_headers: &'a str,
    signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigV4Error> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (algorithm, rest) = match value.find([' ', '\t']) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if algorithm != ALGORITHM {
        return Err(incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'; expected '{ALGORITHM}'. \
             Authorization={value}"
        )));
    }
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(incomplete(format!(
                "Authorization header requires each component to be of the form key=value: \
                 '{part}'. Authorization={value}"
            )));
        };
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => {
                return Err(incomplete(format!(
                    "Authorization header has an unknown component '{key}'. \
                     Authorization={value}"
                )))
            }
        };
        if slot.replace(val).is_some() {
            return Err(incomplete(format!(
                "Authorization header has '{key}' more than once. Authorization={value}"
            )));
        }
    }
    let mut missing = String::new();
    for (name, slot) in [
        ("Credential", &credential),
        ("Signature", &signature),
        ("SignedHeaders", &signed_headers),
    ] {
        if slot.is_none_or(str::is_empty) {
            missing.push_str(&format!(
                "Authorization header requires '{name}' parameter. "
            ));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(incomplete(format!("{missing}Authorization={value}")));
    };
    if !missing.is_empty() {
        return Err(incomplete(format!("{missing}Authorization={value}")));
    }
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(incomplete(format!(
            "Credential must have exactly 5 slash-separated components: \
             <access key id>/<YYYYMMDD>/<region>/<service>/aws4_request, got '{credential}'."
        )));
    };
    if terminator != TERMINATOR {
        return Err(incomplete(format!(
            "Credential should be scoped with a valid terminator: '{TERMINATOR}', not \
             '{terminator}'."
        )));
    }
    for (name, v) in [
        ("access key id", access_key_id),
        ("date", date),
        ("region", region),
        ("service", service),
    ] {
        if v.is_empty() {
            return Err(incomplete(format!(
                "Credential has an empty {name}: '{credential}'."
            )));
        }
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// Parses `YYYYMMDDTHHMMSSZ` (exactly 16 ASCII characters).
fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = b.get(r)?;
        let mut n = 0u32;
        for &d in digits {
            if !d.is_ascii_digit() {
                return None;
            }
            n = n * 10 + u32::from(d - b'0');
        }
        Some(n)
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let day = u8::try_from(num(6..8)?).ok()?;
    let hour = u8::try_from(num(9..11)?).ok()?;
    let minute = u8::try_from(num(11..13)?).ok()?;
    let second = u8::try_from(num(13..15)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    let t = time::Time::from_hms(hour, minute, second).ok()?;
    Some(time::PrimitiveDateTime::new(date, t).assume_utc())
}

/// Formats as `YYYYMMDDTHHMMSSZ`.
fn format_amz_date(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Checks `date` is within `max_skew` of `now`, with AWS's messages.
fn check_skew(date: OffsetDateTime, now: SystemTime, max_skew: Duration) -> Result<(), SigV4Error> {
    // `From<SystemTime>` panics past year 9999; a clock out of range accepts nothing.
    let Some(now) = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
    else {
        return Err(SigV4Error::RequestExpired(
            "Request has expired.".to_string(),
        ));
    };
    let skew = time::Duration::try_from(max_skew).unwrap_or(time::Duration::MAX);
    let minutes = max_skew.as_secs() / 60;
    let fmt = |t: Option<OffsetDateTime>| t.map(format_amz_date).unwrap_or_default();
    if date < now && now - date > skew {
        return Err(SigV4Error::RequestExpired(format!(
            "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
            format_amz_date(date),
            fmt(now.checked_sub(skew)),
            format_amz_date(now),
        )));
    }
    if date > now && date - now > skew {
        return Err(SigV4Error::RequestExpired(format!(
            "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
            format_amz_date(date),
            fmt(now.checked_add(skew)),
            format_amz_date(now),
        )));
    }
    Ok(())
}

/// The one value of a header that must appear at most once, as UTF-8.
fn single_header<'h>(
    headers: &'h http::HeaderMap,
    name: &str,
) -> Result<Option<&'h str>, SigV4Error> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(incomplete(format!(
            "The '{name}' header must appear only once."
        )));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| incomplete(format!("The '{name}' header is not visible ASCII.")))
}

/// Verifies `req`'s SigV4 signature under `policy` at `now`; see the module doc for the
/// order of the checks. `secret_for` is called at most once, with the access key id.
pub fn verify(
    req: &Request<'_>,
    now: SystemTime,
    policy: &Policy,
    secret_for: impl FnOnce(&str) -> Option<SecretKey>,
) -> Result<Verified, SigV4Error> {
    let Some(auth_value) = single_header(req.headers, "authorization")? else {
        return Err(SigV4Error::MissingAuthenticationToken);
    };
    let auth = parse_authorization(auth_value)?;

    // The signed header names: valid, and `host` among them.
    let mut names = Vec::new();
    for name in auth.signed_headers.split(';') {
        let parsed = http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            incomplete(format!(
                "SignedHeaders has an invalid header name '{name}'. Authorization={auth_value}"
            ))
        })?;
        names.push(parsed);
    }
    if !names.contains(&http::header::HOST) {
        return Err(incomplete(format!(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization. \
             Authorization={auth_value}"
        )));
    }

    let Some(amz_date) = single_header(req.headers, "x-amz-date")? else {
        return Err(incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' \
             header.",
        ));
    };
    let Some(date) = parse_amz_date(amz_date) else {
        return Err(incomplete(format!(
            "The 'X-Amz-Date' header '{amz_date}' is not of the form YYYYMMDD'T'HHMMSS'Z'."
        )));
    };
    if amz_date.get(..8) != Some(auth.date) {
        return Err(incomplete(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            amz_date.get(..8).unwrap_or_default(),
        )));
    }

    if auth.service != policy.service {
        return Err(SigV4Error::SignatureDoesNotMatch(format!(
            "Credential should be scoped to correct service: '{}'. ",
            policy.service
        )));
    }
    if let Some(region) = &policy.region {
        if auth.region != region {
            return Err(SigV4Error::SignatureDoesNotMatch(format!(
                "Credential should be scoped to a valid region, not '{}'. ",
                auth.region
            )));
        }
    }

    check_skew(date, now, policy.max_skew)?;

    let Some(secret) = secret_for(auth.access_key_id) else {
        return Err(SigV4Error::InvalidClientTokenId);
    };

    let body_hash = hex::encode(Sha256::digest(req.body));
    let payload_hash = match single_header(req.headers, "x-amz-content-sha256") {
        Ok(Some(declared)) => {
            if !declared.eq_ignore_ascii_case(&body_hash) {
                return Err(SigV4Error::SignatureDoesNotMatch(
                    "The provided 'x-amz-content-sha256' header does not match what was \
                     computed."
                        .to_string(),
                ));
            }
            declared
        }
        Ok(None) => &body_hash,
        Err(_) => return Err(SigV4Error::mismatch()),
    };

    let canonical = canonical_request(req, auth.signed_headers, &names, payload_hash);
    let scope = format!(
        "{}/{}/{}/{TERMINATOR}",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(&canonical))
    );
    let key = signing_key(&secret, auth.date, auth.region, auth.service);
    let expected = Zeroizing::new(hex::encode(hmac(&key[..], string_to_sign.as_bytes())));
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(Verified {
            access_key_id: auth.access_key_id.to_string(),
            region: auth.region.to_string(),
        })
    } else {
        Err(SigV4Error::mismatch())
    }
}

/// HMAC-SHA256 of `data` under `key`.
fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
fn signing_key(secret: &SecretKey, date: &str, region: &str, service: &str) -> Zeroizing<[u8; 32]> {
    let mut k_secret = Zeroizing::new(Vec::with_capacity(4 + secret.as_bytes().len()));
    k_secret.extend_from_slice(b"AWS4");
    k_secret.extend_from_slice(secret.as_bytes());
    let mut k_date = hmac(&k_secret, date.as_bytes());
    let mut k_region = hmac(&k_date, region.as_bytes());
    let mut k_service = hmac(&k_region, service.as_bytes());
    let k_signing = Zeroizing::new(hmac(&k_service, TERMINATOR.as_bytes()));
    k_date.zeroize();
    k_region.zeroize();
    k_service.zeroize();
    k_signing
}

/// The canonical request (method, URI, query, headers, signed headers, payload hash), as
/// bytes: header values may carry obs-text, which is hashed as received.
fn canonical_request(
    req: &Request<'_>,
    signed_headers: &str,
    names: &[http::HeaderName],
    payload_hash: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_uri(req.path).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(canonical_query(req.query).as_bytes());
    out.push(b'\n');
    for (listed, name) in signed_headers.split(';').zip(names) {
        out.extend_from_slice(listed.as_bytes());
        out.push(b':');
        let mut value: Vec<u8> = Vec::new();
        for (i, v) in req.headers.get_all(name).iter().enumerate() {
            if i > 0 {
                value.push(b',');
            }
            value.extend_from_slice(v.as_bytes().trim_ascii());
        }
        push_collapsed(&mut out, &value);
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(signed_headers.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload_hash.as_bytes());
    out
}

/// Appends `value` trimmed, with runs of spaces and tabs collapsed to one space.
fn push_collapsed(out: &mut Vec<u8>, value: &[u8]) {
    let mut pending_space = false;
    let mut started = false;
    for &b in value {
        if b == b' ' || b == b'\t' {
            pending_space = started;
            continue;
        }
        if pending_space {
            out.push(b' ');
            pending_space = false;
        }
        started = true;
        out.push(b);
    }
}

/// Whether `b` is one of SigV4's unreserved characters.
fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

/// Percent-encodes every byte but the unreserved ones (upper-case hex).
fn uri_encode(bytes: &[u8], out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if unreserved(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

/// The canonical URI: botocore's normalisation (dot segments and empty segments removed,
/// a trailing `/` kept), each segment encoded (again).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        uri_encode(seg.as_bytes(), &mut out);
    }
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Decodes `%XX` escapes; an invalid escape is a literal `%`, `+` a literal plus.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| char::from(*c).to_digit(16));
            let lo = b.get(i + 2).and_then(|c| char::from(*c).to_digit(16));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                // Both are < 16, so the byte fits.
                out.push(u8::try_from(hi * 16 + lo).unwrap_or(0));
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// The canonical query string: pairs decoded and re-encoded, sorted by key then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let (mut ek, mut ev) = (String::new(), String::new());
            uri_encode(&percent_decode(k), &mut ek);
            uri_encode(&percent_decode(v), &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out
}

/// The property tests' case count: `BERTH_FUZZ_CASES`, default 256.
#[cfg(test)]
pub(crate) fn fuzz_cases() -> u32 {
    std::env::var("BERTH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[cfg(test)]
mod tests;
