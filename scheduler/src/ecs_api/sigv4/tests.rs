//! Tests of SigV4 verification: AWS's published test-suite vectors, a request signed by
//! real botocore, every error, tampering, and property tests (`BERTH_FUZZ_CASES` cases).

use std::cell::Cell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

use super::*;

// ---------------------------------------------------------------------------------------
// Helpers

/// `YYYYMMDDTHHMMSSZ` → a `SystemTime`.
fn at(amz_date: &str) -> SystemTime {
    let t = parse_amz_date(amz_date).unwrap();
    UNIX_EPOCH + Duration::from_secs(u64::try_from(t.unix_timestamp()).unwrap())
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn secret_of(akid: &'static str, secret: &'static str) -> impl Fn(&str) -> Option<SecretKey> {
    move |k| (k == akid).then(|| SecretKey::from(secret))
}

/// An owned request, for building and tampering.
#[derive(Debug, Clone)]
struct Owned {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Owned {
    fn req(&self) -> Request<'_> {
        Request {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            body: &self.body,
        }
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    fn auth(&self) -> String {
        self.headers["authorization"].to_str().unwrap().to_string()
    }
}

// ---------------------------------------------------------------------------------------
// An independent signer (the client's side), written from AWS's description and sharing
// no code with the verifier: it sorts and lower-cases the headers it is given, signs all
// of them, and expects `path` and `query` already canonical (as the tests give them).

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

struct Signer<'a> {
    akid: &'a str,
    secret: &'a str,
    region: &'a str,
    service: &'a str,
    amz_date: &'a str,
}

impl Signer<'_> {
    /// The Authorization value for a request carrying `headers` (which must include host
    /// and x-amz-date), all of them signed.
    fn authorization(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> String {
        let mut hs: Vec<(String, String)> = Vec::new();
        for (k, v) in headers {
            let k = k.to_ascii_lowercase();
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            match hs.iter_mut().find(|(n, _)| *n == k) {
                Some((_, existing)) => {
                    existing.push(',');
                    existing.push_str(&v);
                }
                None => hs.push((k, v)),
            }
        }
        hs.sort();
        let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed: Vec<&str> = hs.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let creq = format!(
            "{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{}",
            hex::encode(Sha256::digest(body))
        );
        let date = &self.amz_date[..8];
        let scope = format!("{date}/{}/{}/aws4_request", self.region, self.service);
        let sts = format!(
            "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
            self.amz_date,
            hex::encode(Sha256::digest(creq.as_bytes()))
        );
        let k = mac(format!("AWS4{}", self.secret).as_bytes(), date);
        let k = mac(&k, self.region);
        let k = mac(&k, self.service);
        let k = mac(&k, "aws4_request");
        let sig = hex::encode(mac(&k, &sts));
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={sig}",
            self.akid
        )
    }
}

/// A signed ECS ListTasks request from the independent signer.
const AKID: &str = "AKIDBERTH";
const SECRET: &str = "berth/Secret+Key";
const DATE: &str = "20240101T120000Z";

fn signed_list_tasks() -> Owned {
    let body = br#"{"cluster":"c1"}"#.to_vec();
    let hs: Vec<(String, String)> = [
        ("Host", "berth:8080"),
        ("Content-Type", "application/x-amz-json-1.1"),
        (
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.ListTasks",
        ),
        ("X-Amz-Date", DATE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signer = Signer {
        akid: AKID,
        secret: SECRET,
        region: "us-east-1",
        service: "ecs",
        amz_date: DATE,
    };
    let auth = signer.authorization("POST", "/", "", &hs, &body);
    let mut o = Owned {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: HeaderMap::new(),
        body,
    };
    for (k, v) in &hs {
        o.set(k, v);
    }
    o.set("authorization", &auth);
    o
}

fn check(o: &Owned) -> Result<Verified, SigV4Error> {
    verify(
        &o.req(),
        at(DATE),
        &Policy::ecs(None),
        secret_of(AKID, SECRET),
    )
}

fn is_mismatch(r: &Result<Verified, SigV4Error>) -> bool {
    matches!(r, Err(SigV4Error::SignatureDoesNotMatch(_)))
}

fn is_incomplete(r: &Result<Verified, SigV4Error>) -> bool {
    matches!(r, Err(SigV4Error::IncompleteSignature(_)))
}

// ---------------------------------------------------------------------------------------
// (a) AWS's SigV4 test suite (https://docs.aws.amazon.com/general/latest/gr/signature-v4-test-suite.html):
// service `service`, region `us-east-1`, AKIDEXAMPLE, 20150830T123600Z. The expected
// signatures are AWS's, as carried by the AWS SDK for JavaScript's suite fixture
// (`@aws-sdk/signature-v4` `suite.fixture`). Requests are given as on the wire, except
// get-utf8, whose request line carries the raw UTF-8 path as the suite's `.req` does.

struct Vector {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    signed: &'static str,
    signature: &'static str,
}

const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SUITE_DATE: &str = "20150830T123600Z";
const HOST: (&str, &str) = ("Host", "example.amazonaws.com");
const XDATE: (&str, &str) = ("X-Amz-Date", "20150830T123600Z");
const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==";

const VECTORS: &[Vector] = &[
    Vector {
        name: "get-vanilla",
        method: "GET",
        path: "/",
        query: "",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    },
    Vector {
        name: "get-vanilla-query-order-key-case",
        method: "GET",
        path: "/",
        query: "Param2=value2&Param1=value1",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    },
    Vector {
        name: "get-vanilla-empty-query-key",
        method: "GET",
        path: "/",
        query: "Param1=value1",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
    },
    Vector {
        name: "get-vanilla-query-unreserved",
        method: "GET",
        path: "/",
        query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
    },
    Vector {
        name: "get-vanilla-utf8-query",
        method: "GET",
        path: "/",
        query: "%E1%88%B4=bar",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
    },
    Vector {
        name: "get-unreserved",
        method: "GET",
        path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        query: "",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
    },
    Vector {
        name: "get-utf8",
        method: "GET",
        path: "/\u{1234}",
        query: "",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
    },
    Vector {
        name: "get-header-value-trim",
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            HOST,
            ("My-Header1", " value1"),
            ("My-Header2", " \"a   b   c\""),
            XDATE,
        ],
        body: "",
        signed: "host;my-header1;my-header2;x-amz-date",
        signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
    },
    Vector {
        name: "get-header-key-duplicate",
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            HOST,
            ("My-Header1", "value2"),
            ("My-Header1", "value2"),
            ("My-Header1", "value1"),
            XDATE,
        ],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
    },
    Vector {
        name: "get-header-value-order",
        method: "GET",
        path: "/",
        query: "",
        headers: &[
            HOST,
            ("My-Header1", "value4"),
            ("My-Header1", "value1"),
            ("My-Header1", "value3"),
            ("My-Header1", "value2"),
            XDATE,
        ],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
    },
    Vector {
        name: "post-vanilla",
        method: "POST",
        path: "/",
        query: "",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
    },
    Vector {
        name: "post-header-key-sort",
        method: "POST",
        path: "/",
        query: "",
        headers: &[HOST, ("My-Header1", "value1"), XDATE],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
    },
    Vector {
        name: "post-header-value-case",
        method: "POST",
        path: "/",
        query: "",
        headers: &[HOST, ("My-Header1", "VALUE1"), XDATE],
        body: "",
        signed: "host;my-header1;x-amz-date",
        signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
    },
    Vector {
        name: "post-vanilla-query",
        method: "POST",
        path: "/",
        query: "Param1=value1",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
    },
    Vector {
        name: "post-vanilla-query-nonunreserved",
        method: "POST",
        path: "/",
        query: "%40%23%24%25%5E=&%2B=%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "66c82657c86e26fb25238d0e69f011edc4c6df5ae71119d7cb98ed9b87393c1e",
    },
    Vector {
        name: "post-vanilla-query-space",
        method: "POST",
        path: "/",
        query: "p",
        headers: &[HOST, XDATE],
        body: "",
        signed: "host;x-amz-date",
        signature: "e71688addb58a26418614085fb730ba3faa623b461c17f48f2fbdb9361b94a9b",
    },
    Vector {
        name: "post-sts-header-before",
        method: "POST",
        path: "/",
        query: "",
        headers: &[HOST, XDATE, ("X-Amz-Security-Token", STS_TOKEN)],
        body: "",
        signed: "host;x-amz-date;x-amz-security-token",
        signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
    },
    Vector {
        name: "post-x-www-form-urlencoded",
        method: "POST",
        path: "/",
        query: "",
        headers: &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            HOST,
            XDATE,
        ],
        body: "Param1=value1",
        signed: "content-type;host;x-amz-date",
        signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
    },
];

fn suite_request(v: &Vector, signature: &str) -> Owned {
    let mut h = headers(v.headers);
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders={}, Signature={signature}",
            v.signed
        ))
        .unwrap(),
    );
    Owned {
        method: v.method.into(),
        path: v.path.into(),
        query: v.query.into(),
        headers: h,
        body: v.body.as_bytes().to_vec(),
    }
}

fn suite_policy() -> Policy {
    Policy {
        service: "service",
        region: Some("us-east-1".into()),
        max_skew: DEFAULT_MAX_SKEW,
    }
}

#[test]
fn aws_test_suite_vectors_verify() {
    for v in VECTORS {
        let o = suite_request(v, v.signature);
        let got = verify(
            &o.req(),
            at(SUITE_DATE),
            &suite_policy(),
            secret_of("AKIDEXAMPLE", SUITE_SECRET),
        );
        assert_eq!(
            got,
            Ok(Verified {
                access_key_id: "AKIDEXAMPLE".into(),
                region: "us-east-1".into()
            }),
            "{}",
            v.name
        );
    }
}

#[test]
fn aws_test_suite_vectors_fail_with_another_signature() {
    // Each vector's signature is checked for real: swapping in another's fails.
    for (i, v) in VECTORS.iter().enumerate() {
        let other = VECTORS[(i + 1) % VECTORS.len()].signature;
        if other == v.signature {
            continue;
        }
        let o = suite_request(v, other);
        let got = verify(
            &o.req(),
            at(SUITE_DATE),
            &suite_policy(),
            secret_of("AKIDEXAMPLE", SUITE_SECRET),
        );
        assert!(is_mismatch(&got), "{}: {got:?}", v.name);
    }
}

#[test]
fn the_independent_signer_reproduces_the_suite() {
    // The test signer is checked against AWS too, so the properties below rest on it.
    let signer = Signer {
        akid: "AKIDEXAMPLE",
        secret: SUITE_SECRET,
        region: "us-east-1",
        service: "service",
        amz_date: SUITE_DATE,
    };
    let hs = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let auth = signer.authorization("GET", "/", "", &hs(&[HOST, XDATE]), b"");
    assert!(auth.ends_with("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"));
    let form = [
        ("Content-Type", "application/x-www-form-urlencoded"),
        HOST,
        XDATE,
    ];
    let auth = signer.authorization("POST", "/", "", &hs(&form), b"Param1=value1");
    assert!(auth.ends_with("ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"));
}

#[test]
fn canonical_forms() {
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri(""), "/");
    assert_eq!(canonical_uri("//a//b/"), "/a/b/");
    assert_eq!(canonical_uri("/a/./b/../c"), "/a/c");
    assert_eq!(canonical_uri("/../.."), "/");
    // Double encoding: the received (encoded) path is encoded again, as botocore signs it.
    assert_eq!(canonical_uri("/a%20b/c d"), "/a%2520b/c%20d");
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("b=2&a=1&A=0&a=0"), "A=0&a=0&a=1&b=2");
    assert_eq!(canonical_query("a&&b="), "a=&b=");
    assert_eq!(canonical_query("k=a+b%2x%"), "k=a%2Bb%252x%25");
    assert_eq!(canonical_query("x=%7e%41"), "x=~A");
}

// ---------------------------------------------------------------------------------------
// (b) A request signed by real botocore. Generated with botocore 1.44.18:
//
//   python3 -m venv /tmp/venv-sig && /tmp/venv-sig/bin/pip install botocore
//   creds = Credentials("AKIDBERTHEXAMPLE", "berthSecretKeyExample/0123456789abcdefXYZ")
//   body = json.dumps({"cluster": "c1", "desiredStatus": "RUNNING"})
//   req = AWSRequest(method="POST", url="http://berth.example:8080/", data=body, headers={
//       "Content-Type": "application/x-amz-json-1.1",
//       "X-Amz-Target": "AmazonEC2ContainerServiceV20141113.ListTasks",
//       "User-Agent": "aws-cli/2.15.0 botocore/1.44.18"})
//   SigV4Auth(creds, "ecs", "eu-west-3").add_auth(req)
//
// and the headers it produced pasted below (botocore derives `Host` from the URL; the HTTP
// layer adds `Content-Length`, which it does not sign).

fn botocore_list_tasks() -> Owned {
    let h = headers(&[
        ("Host", "berth.example:8080"),
        ("Content-Type", "application/x-amz-json-1.1"),
        (
            "X-Amz-Target",
            "AmazonEC2ContainerServiceV20141113.ListTasks",
        ),
        ("User-Agent", "aws-cli/2.15.0 botocore/1.44.18"),
        ("Content-Length", "45"),
        ("X-Amz-Date", "20261205T125820Z"),
        (
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDBERTHEXAMPLE/20261205/eu-west-3/ecs/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-target, \
             Signature=47528ad7ccdb15c1a6a8e650eef19d8f37b91d7de34681f018823d16d553d79b",
        ),
    ]);
    Owned {
        method: "POST".into(),
        path: "/".into(),
        query: String::new(),
        headers: h,
        body: br#"{"cluster": "c1", "desiredStatus": "RUNNING"}"#.to_vec(),
    }
}

const BOTO_AKID: &str = "AKIDBERTHEXAMPLE";
const BOTO_SECRET: &str = "berthSecretKeyExample/0123456789abcdefXYZ";

#[test]
fn a_botocore_signed_list_tasks_verifies() {
    let o = botocore_list_tasks();
    let got = verify(
        &o.req(),
        at("20261205T130000Z"),
        &Policy::ecs(Some("eu-west-3".into())),
        secret_of(BOTO_AKID, BOTO_SECRET),
    );
    assert_eq!(
        got,
        Ok(Verified {
            access_key_id: BOTO_AKID.into(),
            region: "eu-west-3".into()
        })
    );
    // And fails with another secret, another body, or another target.
    let wrong = verify(
        &o.req(),
        at("20261205T130000Z"),
        &Policy::ecs(None),
        secret_of(BOTO_AKID, "berthSecretKeyExample/0123456789abcdefXYz"),
    );
    assert!(is_mismatch(&wrong));
    let mut body = o.clone();
    body.body = br#"{"cluster": "c2", "desiredStatus": "RUNNING"}"#.to_vec();
    assert!(is_mismatch(&verify(
        &body.req(),
        at("20261205T130000Z"),
        &Policy::ecs(None),
        secret_of(BOTO_AKID, BOTO_SECRET)
    )));
    let mut target = o.clone();
    target.set(
        "x-amz-target",
        "AmazonEC2ContainerServiceV20141113.DeleteCluster",
    );
    assert!(is_mismatch(&verify(
        &target.req(),
        at("20261205T130000Z"),
        &Policy::ecs(None),
        secret_of(BOTO_AKID, BOTO_SECRET)
    )));
}

// ---------------------------------------------------------------------------------------
// (c) Each error, its code, status and message.

#[test]
fn the_independent_signers_request_verifies() {
    let o = signed_list_tasks();
    assert_eq!(
        check(&o),
        Ok(Verified {
            access_key_id: AKID.into(),
            region: "us-east-1".into()
        })
    );
}

#[test]
fn a_request_from_http_parts() {
    let o = botocore_list_tasks();
    let mut builder = http::Request::builder()
        .method("POST")
        .uri("http://berth.example:8080/");
    for (k, v) in &o.headers {
        builder = builder.header(k, v);
    }
    let (parts, body) = builder.body(o.body.clone()).unwrap().into_parts();
    let req = Request::from_parts(&parts, &body);
    assert_eq!((req.method, req.path, req.query), ("POST", "/", ""));
    let got = verify(
        &req,
        at("20261205T125820Z"),
        &Policy::ecs(None),
        secret_of(BOTO_AKID, BOTO_SECRET),
    );
    assert!(got.is_ok(), "{got:?}");
}

#[test]
fn missing_authentication_token() {
    let mut o = signed_list_tasks();
    o.headers.remove("authorization");
    let e = check(&o).unwrap_err();
    assert_eq!(e, SigV4Error::MissingAuthenticationToken);
    assert_eq!(
        (e.aws_code(), e.http_status()),
        ("MissingAuthenticationToken", 403)
    );
    assert_eq!(e.to_string(), "Missing Authentication Token");
}

#[test]
fn incomplete_signature_cases() {
    let good = signed_list_tasks();
    let auth = good.auth();
    let sig = auth.rsplit_once("Signature=").unwrap().1.to_string();
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("algorithm only", "AWS4-HMAC-SHA256".into()),
        (
            "wrong algorithm",
            auth.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA512"),
        ),
        ("sigv2", format!("AWS {AKID}:{sig}")),
        (
            "no credential",
            format!("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature={sig}"),
        ),
        (
            "no signature",
            auth.replace(&format!(", Signature={sig}"), ""),
        ),
        ("empty signature", auth.replace(&sig, "")),
        (
            "no signed headers",
            auth.replace(
                "SignedHeaders=content-type;host;x-amz-date;x-amz-target, ",
                "",
            ),
        ),
        ("repeated part", format!("{auth}, Signature={sig}")),
        ("unknown part", format!("{auth}, Foo=bar")),
        ("no equals", format!("{auth}, Foo")),
        (
            "short credential",
            auth.replace("/us-east-1/ecs/aws4_request", "/us-east-1/ecs"),
        ),
        (
            "long credential",
            auth.replace("aws4_request", "aws4_request/x"),
        ),
        (
            "bad terminator",
            auth.replace("aws4_request", "aws5_request"),
        ),
        ("empty region", auth.replace("/us-east-1/", "//")),
        (
            "empty akid",
            auth.replace(&format!("Credential={AKID}/"), "Credential=/"),
        ),
        (
            "host not signed",
            auth.replace("content-type;host;", "content-type;"),
        ),
        (
            "bad header name",
            auth.replace("content-type;host", "content type;host"),
        ),
        (
            "empty header name",
            auth.replace("content-type;host", "content-type;;host"),
        ),
        ("scope date", auth.replace("/20240101/", "/20240102/")),
    ];
    for (name, value) in cases {
        let mut o = good.clone();
        o.set("authorization", &value);
        let r = check(&o);
        assert!(is_incomplete(&r), "{name}: {value} -> {r:?}");
        let e = r.unwrap_err();
        assert_eq!(
            (e.aws_code(), e.http_status()),
            ("IncompleteSignature", 400)
        );
    }

    // The date: missing, malformed, impossible, repeated.
    for (name, date) in [
        ("missing", None),
        ("rfc1123", Some("Mon, 01 Jan 2024 12:00:00 GMT")),
        ("no Z", Some("20240101T120000")),
        ("extended", Some("2024-01-01T12:00:00Z")),
        ("month 13", Some("20241301T120000Z")),
        ("hour 24", Some("20240101T240000Z")),
        ("Feb 30", Some("20240230T120000Z")),
        ("signs", Some("+2024101T120000Z")),
    ] {
        let mut o = good.clone();
        o.headers.remove("x-amz-date");
        if let Some(d) = date {
            o.set("x-amz-date", d);
        }
        let r = check(&o);
        assert!(is_incomplete(&r), "{name}: {r:?}");
    }
    let mut o = good.clone();
    o.headers
        .append("x-amz-date", HeaderValue::from_static(DATE));
    assert!(is_incomplete(&check(&o)), "two dates");
    let mut o = good.clone();
    o.headers
        .append("authorization", HeaderValue::from_str(&auth).unwrap());
    assert!(is_incomplete(&check(&o)), "two authorizations");
    let mut o = good.clone();
    o.headers.insert(
        "authorization",
        HeaderValue::from_bytes(b"AWS4-HMAC-SHA256 \xff").unwrap(),
    );
    assert!(is_incomplete(&check(&o)), "not ascii");

    // AWS's message for the scope date.
    let mut o = good.clone();
    o.set("authorization", &auth.replace("/20240101/", "/20240102/"));
    assert_eq!(
        check(&o).unwrap_err().to_string(),
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from \
         HTTP: '20240102' != '20240101', from '20240101T120000Z'."
    );
}

#[test]
fn the_authorization_header_is_parsed_tolerantly() {
    let good = signed_list_tasks();
    let auth = good.auth();
    let (_, rest) = auth.split_once(' ').unwrap();
    let parts: Vec<&str> = rest.split(", ").collect();
    assert_eq!(parts.len(), 3);
    let variants = [
        format!("AWS4-HMAC-SHA256 {},{},{}", parts[0], parts[1], parts[2]),
        format!(
            "AWS4-HMAC-SHA256   {} ,  {}\t,{}  ",
            parts[2], parts[0], parts[1]
        ),
        format!(
            "  AWS4-HMAC-SHA256\t{}, {}, {}",
            parts[1], parts[2], parts[0]
        ),
        format!("AWS4-HMAC-SHA256 {} {} {}", parts[0], parts[1], parts[2]),
    ];
    for v in variants {
        let mut o = good.clone();
        o.set("authorization", &v);
        assert!(check(&o).is_ok(), "{v}");
    }
}

#[test]
fn invalid_client_token_id() {
    let o = signed_list_tasks();
    let e = verify(&o.req(), at(DATE), &Policy::ecs(None), |_| None).unwrap_err();
    assert_eq!(e, SigV4Error::InvalidClientTokenId);
    assert_eq!(
        (e.aws_code(), e.http_status()),
        ("InvalidClientTokenId", 403)
    );
    assert_eq!(
        e.to_string(),
        "The security token included in the request is invalid."
    );
}

#[test]
fn signature_does_not_match_and_scoping() {
    let good = signed_list_tasks();
    let e = verify(
        &good.req(),
        at(DATE),
        &Policy::ecs(None),
        secret_of(AKID, "other"),
    )
    .unwrap_err();
    assert_eq!(
        (e.aws_code(), e.http_status()),
        ("SignatureDoesNotMatch", 403)
    );
    assert!(e
        .to_string()
        .starts_with("The request signature we calculated does not match"));

    // Another service.
    let mut o = good.clone();
    o.set("authorization", &good.auth().replace("/ecs/", "/sts/"));
    let e = check(&o).unwrap_err();
    assert_eq!(e.aws_code(), "SignatureDoesNotMatch");
    assert_eq!(
        e.to_string(),
        "Credential should be scoped to correct service: 'ecs'. "
    );

    // A configured region.
    let policy = Policy::ecs(Some("eu-west-1".into()));
    let e = verify(&good.req(), at(DATE), &policy, secret_of(AKID, SECRET)).unwrap_err();
    assert_eq!(e.aws_code(), "SignatureDoesNotMatch");
    assert!(
        e.to_string()
            .starts_with("Credential should be scoped to a valid region"),
        "{e}"
    );
    let policy = Policy::ecs(Some("us-east-1".into()));
    assert!(verify(&good.req(), at(DATE), &policy, secret_of(AKID, SECRET)).is_ok());

    // Any region when none is configured (the signature covers it: re-signed for it).
    let signer = Signer {
        akid: AKID,
        secret: SECRET,
        region: "mars-north-7",
        service: "ecs",
        amz_date: DATE,
    };
    let hs = vec![
        ("Host".to_string(), "h".to_string()),
        ("X-Amz-Date".to_string(), DATE.to_string()),
    ];
    let mut o = good.clone();
    o.headers = HeaderMap::new();
    for (k, v) in &hs {
        o.set(k, v);
    }
    o.set(
        "authorization",
        &signer.authorization("POST", "/", "", &hs, &o.body.clone()),
    );
    assert_eq!(check(&o).unwrap().region, "mars-north-7");
}

#[test]
fn request_expired_either_way() {
    let o = signed_list_tasks();
    let base = at(DATE);
    let policy = Policy::ecs(None);
    let lookup = || secret_of(AKID, SECRET);
    // Exactly 15 minutes either way is accepted; one second more is not.
    let fifteen = Duration::from_secs(15 * 60);
    assert!(verify(&o.req(), base + fifteen, &policy, lookup()).is_ok());
    assert!(verify(&o.req(), base - fifteen, &policy, lookup()).is_ok());
    let late = verify(
        &o.req(),
        base + fifteen + Duration::from_secs(1),
        &policy,
        lookup(),
    )
    .unwrap_err();
    assert_eq!(
        (late.aws_code(), late.http_status()),
        ("RequestExpired", 400)
    );
    assert_eq!(
        late.to_string(),
        "Signature expired: 20240101T120000Z is now earlier than 20240101T120001Z \
         (20240101T121501Z - 15 min.)"
    );
    let early = verify(
        &o.req(),
        base - fifteen - Duration::from_secs(1),
        &policy,
        lookup(),
    )
    .unwrap_err();
    assert_eq!(early.aws_code(), "RequestExpired");
    assert_eq!(
        early.to_string(),
        "Signature not yet current: 20240101T120000Z is still later than 20240101T115959Z \
         (20240101T114459Z + 15 min.)"
    );
    // Far-off clocks do not overflow.
    assert!(verify(&o.req(), UNIX_EPOCH, &policy, lookup()).is_err());
    let far = UNIX_EPOCH + Duration::from_secs(200 * 365 * 86400);
    assert!(verify(&o.req(), far, &policy, lookup()).is_err());
    let wide = Policy {
        max_skew: Duration::MAX,
        ..Policy::ecs(None)
    };
    assert!(verify(&o.req(), base, &wide, lookup()).is_ok());
}

#[test]
fn the_lookup_happens_once_and_only_after_the_cheap_checks() {
    let calls = Cell::new(0);
    let counting = |k: &str| {
        calls.set(calls.get() + 1);
        (k == AKID).then(|| SecretKey::from(SECRET))
    };
    let good = signed_list_tasks();
    assert!(verify(&good.req(), at(DATE), &Policy::ecs(None), counting).is_ok());
    assert_eq!(calls.get(), 1);

    let expired = at(DATE) + Duration::from_secs(3600);
    let counting = |_: &str| {
        calls.set(calls.get() + 1);
        None
    };
    assert!(matches!(
        verify(&good.req(), expired, &Policy::ecs(None), counting),
        Err(SigV4Error::RequestExpired(_))
    ));
    let mut bad = good.clone();
    bad.set("authorization", "AWS4-HMAC-SHA256 nonsense");
    let counting = |_: &str| {
        calls.set(calls.get() + 1);
        None
    };
    assert!(is_incomplete(&verify(
        &bad.req(),
        at(DATE),
        &Policy::ecs(None),
        counting
    )));
    let counting = |_: &str| {
        calls.set(calls.get() + 1);
        None
    };
    let policy = Policy::ecs(Some("eu-west-1".into()));
    assert!(is_mismatch(&verify(
        &good.req(),
        at(DATE),
        &policy,
        counting
    )));
    assert_eq!(
        calls.get(),
        1,
        "no lookup for malformed, mis-scoped or expired requests"
    );
}

#[test]
fn secret_keys_are_not_printed() {
    let k = SecretKey::from("hunter2");
    assert_eq!(format!("{k:?}"), "SecretKey(<redacted>)");
    assert!(!format!("{:?}", Some(k)).contains("hunter2"));
}

// ---------------------------------------------------------------------------------------
// (d) Tampering, (e) unsigned headers.

#[test]
fn tampering_fails() {
    let good = signed_list_tasks();
    let mut cases: Vec<(&str, Owned)> = Vec::new();
    let mut o = good.clone();
    o.body = br#"{"cluster":"c2"}"#.to_vec();
    cases.push(("body", o));
    let mut o = good.clone();
    o.body.push(b' ');
    cases.push(("body whitespace", o));
    let mut o = good.clone();
    o.body.clear();
    cases.push(("body removed", o));
    let mut o = good.clone();
    o.set(
        "x-amz-target",
        "AmazonEC2ContainerServiceV20141113.DeleteCluster",
    );
    cases.push(("target", o));
    let mut o = good.clone();
    o.set("content-type", "application/json");
    cases.push(("content-type", o));
    let mut o = good.clone();
    o.set("host", "evil:8080");
    cases.push(("host", o));
    let mut o = good.clone();
    o.headers
        .append("x-amz-target", HeaderValue::from_static("x"));
    cases.push(("second target value", o));
    let mut o = good.clone();
    o.headers.remove("x-amz-target");
    cases.push(("signed header removed", o));
    let mut o = good.clone();
    o.set("x-amz-date", "20240101T120001Z");
    cases.push(("date", o));
    let mut o = good.clone();
    o.method = "PUT".into();
    cases.push(("method", o));
    let mut o = good.clone();
    o.path = "/x".into();
    cases.push(("path", o));
    let mut o = good.clone();
    o.query = "a=b".into();
    cases.push(("query", o));
    let mut o = good.clone();
    o.set(
        "authorization",
        &good.auth().replace("/us-east-1/", "/us-east-2/"),
    );
    cases.push(("scope region", o));
    let mut o = good.clone();
    o.set("authorization", &good.auth().replace(";x-amz-target", ""));
    cases.push(("signed headers list", o));
    let mut o = good.clone();
    let auth = good.auth();
    let upper = format!(
        "{}{}",
        &auth[..auth.len() - 64],
        auth[auth.len() - 64..].to_uppercase()
    );
    o.set("authorization", &upper);
    cases.push(("signature upper-case", o));
    let mut o = good.clone();
    o.set("x-amz-content-sha256", EMPTY_SHA256);
    cases.push(("content hash of another body", o));
    let mut o = good.clone();
    o.set("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    cases.push(("unsigned payload", o));
    for (name, o) in cases {
        let r = check(&o);
        assert!(is_mismatch(&r) || is_incomplete(&r), "{name}: {r:?}");
    }
}

#[test]
fn the_content_sha256_header_may_state_the_bodys_hash() {
    let mut o = signed_list_tasks();
    let hash = hex::encode(Sha256::digest(&o.body));
    o.set("x-amz-content-sha256", &hash);
    assert!(check(&o).is_ok(), "unsigned, equal to the body's hash");
    // Used as given in the canonical request: upper-case matches the body but is not
    // what was signed.
    o.set("x-amz-content-sha256", &hash.to_uppercase());
    assert!(is_mismatch(&check(&o)));

    // Signed too (as S3 clients do): still verifies, and a changed body still fails.
    let hs: Vec<(String, String)> = [
        ("Host", "berth:8080"),
        ("X-Amz-Date", DATE),
        ("X-Amz-Content-Sha256", hash.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let signer = Signer {
        akid: AKID,
        secret: SECRET,
        region: "us-east-1",
        service: "ecs",
        amz_date: DATE,
    };
    let mut o = signed_list_tasks();
    o.headers = HeaderMap::new();
    for (k, v) in &hs {
        o.set(k, v);
    }
    let auth = signer.authorization("POST", "/", "", &hs, &o.body);
    o.set("authorization", &auth);
    assert!(check(&o).is_ok());
    o.body.push(b' ');
    assert!(is_mismatch(&check(&o)));
}

#[test]
fn unsigned_headers_do_not_matter() {
    let mut o = signed_list_tasks();
    o.set("user-agent", "aws-cli/2 something else");
    o.set("content-length", "16");
    o.set("amz-sdk-invocation-id", "f00");
    o.headers
        .append("x-amzn-trace-id", HeaderValue::from_static("Root=1"));
    assert!(check(&o).is_ok());
    // Whitespace in signed values is canonicalised away.
    o.set("content-type", "  application/x-amz-json-1.1 ");
    assert!(check(&o).is_ok());
}

// ---------------------------------------------------------------------------------------
// Properties (BERTH_FUZZ_CASES cases each).

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: fuzz_cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A validly signed random request and the policy/secret it verifies under.
#[derive(Debug, Clone)]
struct Case {
    o: Owned,
    akid: String,
    secret: String,
    region: String,
    now: SystemTime,
}

impl Case {
    fn verify(&self) -> Result<Verified, SigV4Error> {
        verify(&self.o.req(), self.now, &Policy::ecs(None), |k| {
            (k == self.akid).then(|| SecretKey::from(self.secret.as_str()))
        })
    }
}

fn header_value() -> impl Strategy<Value = String> {
    "[ -~\t]{0,24}"
}

fn case() -> impl Strategy<Value = Case> {
    (
        "[A-Z0-9]{1,20}",
        "[ -~]{1,40}",
        "[a-z]{2}(-[a-z]{1,9}){0,2}-[0-9]",
        0i64..4_000_000_000,
        -900i64..=900,
        prop::collection::vec(any::<u8>(), 0..256),
        prop::collection::btree_map("x-e-[a-z0-9-]{1,10}", header_value(), 0..4),
        prop::collection::vec(("[a-z]{1,8}", header_value()), 0..3),
        // No segment is `.` or `..` (the verifier would normalise them away).
        prop::collection::vec("[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,7}", 0..3),
        prop::collection::btree_map("[A-Za-z0-9]{1,6}", "[A-Za-z0-9]{0,6}", 0..3),
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
    )
        .prop_map(
            |(
                akid,
                secret,
                region,
                secs,
                skew,
                body,
                signed_extra,
                unsigned,
                segs,
                query,
                host,
            )| {
                let date = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
                let amz_date = format_amz_date(date);
                let path = format!("/{}", segs.join("/"));
                let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let query = query.join("&");
                let mut hs = vec![
                    ("Host".to_string(), host),
                    ("X-Amz-Date".to_string(), amz_date.clone()),
                    (
                        "Content-Type".to_string(),
                        "application/x-amz-json-1.1".to_string(),
                    ),
                ];
                hs.extend(signed_extra);
                let signer = Signer {
                    akid: &akid,
                    secret: &secret,
                    region: &region,
                    service: "ecs",
                    amz_date: &amz_date,
                };
                let auth = signer.authorization("POST", &path, &query, &hs, &body);
                let mut o = Owned {
                    method: "POST".into(),
                    path,
                    query,
                    headers: HeaderMap::new(),
                    body,
                };
                for (k, v) in &hs {
                    o.headers.append(
                        HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        HeaderValue::from_str(v).unwrap(),
                    );
                }
                for (k, v) in unsigned {
                    // Unsigned extra headers (prefix `u-`), as user-agent would be.
                    o.headers.append(
                        HeaderName::from_bytes(format!("u-{k}").as_bytes()).unwrap(),
                        HeaderValue::from_str(&v).unwrap(),
                    );
                }
                o.set("authorization", &auth);
                let now = UNIX_EPOCH + Duration::from_secs(u64::try_from(secs + skew).unwrap_or(0));
                Case {
                    o,
                    akid,
                    secret,
                    region,
                    now,
                }
            },
        )
}

/// Ways to change a valid request that must make it fail.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBodyBit(usize, u8),
    AppendBody(u8),
    SignatureChar(usize, char),
    SignedHeaderValue(usize, char),
    DateSeconds(i64),
    Region(String),
    AccessKey(String),
    Secret(String),
    Method,
    PathSegment(String),
    Query(String),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBodyBit(i, b)),
        any::<u8>().prop_map(Mutation::AppendBody),
        // Printable ASCII, so the header stays valid and no case is skipped.
        (0usize..64, proptest::char::range(' ', '~'))
            .prop_map(|(i, c)| Mutation::SignatureChar(i, c)),
        (any::<usize>(), proptest::char::range('!', '~'))
            .prop_map(|(i, c)| Mutation::SignedHeaderValue(i, c)),
        prop_oneof![-100_000i64..0, 1i64..100_000].prop_map(Mutation::DateSeconds),
        "[a-z]{2}-[a-z]{1,9}-[0-9]".prop_map(Mutation::Region),
        "[A-Z0-9]{1,20}".prop_map(Mutation::AccessKey),
        "[ -~]{1,40}".prop_map(Mutation::Secret),
        Just(Mutation::Method),
        "[A-Za-z0-9]{1,8}".prop_map(Mutation::PathSegment),
        "[A-Za-z0-9]{1,6}=[A-Za-z0-9]{0,6}".prop_map(Mutation::Query),
    ]
}

/// Applies `m`; false when it would not change the request (then nothing is asserted).
fn apply(c: &mut Case, m: &Mutation) -> bool {
    match m {
        Mutation::FlipBodyBit(i, bit) => {
            if c.o.body.is_empty() {
                return false;
            }
            let i = i % c.o.body.len();
            c.o.body[i] ^= 1 << bit;
        }
        Mutation::AppendBody(b) => c.o.body.push(*b),
        Mutation::SignatureChar(i, ch) => {
            let auth = c.o.auth();
            let start = auth.len() - 64;
            let mut chars: Vec<char> = auth.chars().collect();
            let at = start + i;
            if chars[at] == *ch {
                return false;
            }
            chars[at] = *ch;
            let new: String = chars.into_iter().collect();
            match HeaderValue::from_str(&new) {
                Ok(v) => {
                    c.o.headers.insert("authorization", v);
                }
                Err(_) => return false,
            }
        }
        Mutation::SignedHeaderValue(i, ch) => {
            let auth = c.o.auth();
            let signed = auth
                .split("SignedHeaders=")
                .nth(1)
                .and_then(|s| s.split(',').next())
                .unwrap()
                .to_string();
            let names: Vec<&str> = signed.split(';').collect();
            let name = names[i % names.len()];
            let old = c.o.headers[name].to_str().unwrap().to_string();
            // A visible character appended: never equal after canonicalisation.
            c.o.set(name, &format!("{old}{ch}"));
        }
        Mutation::DateSeconds(d) => {
            let old = parse_amz_date(c.o.headers["x-amz-date"].to_str().unwrap()).unwrap();
            let new = old + time::Duration::seconds(*d);
            c.o.set("x-amz-date", &format_amz_date(new));
        }
        Mutation::Region(r) => {
            if *r == c.region {
                return false;
            }
            let auth =
                c.o.auth()
                    .replace(&format!("/{}/ecs/", c.region), &format!("/{r}/ecs/"));
            c.o.set("authorization", &auth);
        }
        Mutation::AccessKey(k) => {
            if *k == c.akid {
                return false;
            }
            let auth = c.o.auth().replace(
                &format!("Credential={}/", c.akid),
                &format!("Credential={k}/"),
            );
            c.o.set("authorization", &auth);
        }
        Mutation::Secret(s) => {
            if *s == c.secret {
                return false;
            }
            c.secret = s.clone();
        }
        Mutation::Method => c.o.method = "PUT".into(),
        Mutation::PathSegment(s) => c.o.path = format!("{}/{s}", c.o.path.trim_end_matches('/')),
        Mutation::Query(q) => {
            if c.o.query.split('&').any(|p| p == q) {
                return false;
            }
            c.o.query = if c.o.query.is_empty() {
                q.clone()
            } else {
                format!("{}&{q}", c.o.query)
            };
        }
    }
    true
}

fn arbitrary_headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        Just("authorization".to_string()),
        Just("x-amz-date".to_string()),
        Just("host".to_string()),
        Just("x-amz-content-sha256".to_string()),
        "[a-z-]{1,12}",
    ];
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        "AWS4-HMAC-SHA256( |,|Credential=|SignedHeaders=|Signature=|/|;|[a-z0-9-]{1,10}|aws4_request|ecs|20240101)*"
            .prop_map(String::into_bytes),
        "2024010[1-2]T1[0-9]{5}Z?".prop_map(String::into_bytes),
    ];
    prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_bytes(&v),
            ) {
                h.append(k, v);
            }
        }
        h
    })
}

proptest! {
    #![proptest_config(config())]

    /// Any header map, method, path, query and body: no panic, and never accepted (the
    /// secret is one the random input cannot have signed with).
    #[test]
    fn arbitrary_requests_never_panic_or_verify(
        h in arbitrary_headers(),
        method in "[A-Z]{0,7}|.{0,8}",
        path in ".{0,40}",
        query in ".{0,40}",
        body in prop::collection::vec(any::<u8>(), 0..128),
        now in any::<u64>(),
    ) {
        let req = Request { method: &method, path: &path, query: &query, headers: &h, body: &body };
        let now = UNIX_EPOCH + Duration::from_secs(now % (1u64 << 40));
        let r = verify(&req, now, &Policy::ecs(None), |_| Some(SecretKey::from("s3cr3t-not-guessed")));
        prop_assert!(r.is_err());
        let _ = r.map_err(|e| (e.aws_code(), e.http_status(), e.to_string()));
    }

    /// Arbitrary Authorization strings on an otherwise valid request: no panic, not accepted.
    #[test]
    fn arbitrary_authorization_values_never_panic(
        auth in prop_oneof![
            ".{0,200}",
            "AWS4-HMAC-SHA256[ ,\t]{0,3}((Credential|SignedHeaders|Signature)=[ -~]{0,30}[ ,\t]{0,3}){0,4}",
        ],
    ) {
        let mut o = signed_list_tasks();
        if let Ok(v) = HeaderValue::from_bytes(auth.as_bytes()) {
            o.headers.insert("authorization", v);
            prop_assert!(check(&o).is_err());
        }
    }

    /// A validly signed random request (random body, header values, extra signed and
    /// unsigned headers, region, key, secret, path, query, clock within the skew) verifies.
    #[test]
    fn valid_random_requests_verify(c in case()) {
        let got = c.verify();
        prop_assert_eq!(got, Ok(Verified { access_key_id: c.akid.clone(), region: c.region.clone() }));
    }

    /// Any change to the body, the signature, a signed header, the date, the scope, the
    /// key, the secret, the method, the path or the query fails.
    #[test]
    fn mutated_requests_fail(mut c in case(), m in mutation()) {
        if apply(&mut c, &m) {
            let r = c.verify();
            prop_assert!(r.is_err(), "{:?} verified after {:?}", c, m);
        }
    }

    /// Any single byte of the Authorization value changed, except the separators whose
    /// spelling does not matter: never accepted, never a panic.
    #[test]
    fn authorization_byte_flips_fail(c in case(), i in any::<usize>(), b in any::<u8>()) {
        let mut c = c;
        let auth = c.o.auth().into_bytes();
        let i = i % auth.len();
        let separators = [b' ', b',', b'\t'];
        if auth[i] != b && !(separators.contains(&auth[i]) && separators.contains(&b)) {
            let mut new = auth.clone();
            new[i] = b;
            if let Ok(v) = HeaderValue::from_bytes(&new) {
                c.o.headers.insert("authorization", v);
                let r = c.verify();
                prop_assert!(r.is_err(), "{:?}", String::from_utf8_lossy(&new));
            }
        }
    }
}
