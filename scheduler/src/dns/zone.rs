//! The records the DNS server answers with, built from the traffic view's
//! discovered services, and the answer to one query; pure (no I/O, no
//! clock), so every decision is unit-tested here.
//!
//! For a service with the DNS name `S` in namespace `N`:
//!
//! | name             | type | records                                          |
//! |------------------|------|--------------------------------------------------|
//! | `S.N`            | A    | the distinct addresses of its healthy endpoints  |
//! | `S.N`, `_S._tcp.N` | SRV | one per endpoint: `1 1 PORT <task-id>.S.N.`     |
//! | `<task-id>.S.N`  | A    | that endpoint's address                          |
//!
//! Names are matched case-insensitively. A name in a served namespace
//! with no records of any type is NXDOMAIN; one that exists (with records
//! of another type, an empty non-terminal such as `_tcp.N`, or the
//! namespace itself) is NOERROR without answers (NODATA). Both carry the
//! namespace's SOA in the authority section, whose TTL and `minimum` are
//! the configured TTL, so resolvers cache the negative answer that long
//! (RFC 2308). A name outside every namespace is REFUSED: the server is
//! authoritative only, and never recurses or forwards.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::traffic::Discovered;

/// The largest UDP answer the server sends (EDNS's safe default; RFC 9715
/// and the DNS flag day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// One SRV record's data.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Srv {
    port: u16,
    /// Lowercase, without the trailing dot.
    target: String,
}

/// The records of one name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
struct Node {
    a: BTreeSet<Ipv4Addr>,
    srv: BTreeSet<Srv>,
}

/// Every name the server answers for, at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase names without the trailing dot.
    nodes: BTreeMap<String, Node>,
    /// Names without records that have names with records below them,
    /// inside a namespace (`_tcp.N`, and `N` itself).
    empty_non_terminals: HashSet<String>,
    /// The served namespaces, longest first (a name belongs to the longest
    /// one it is in).
    namespaces: Vec<String>,
    ttl: u32,
    /// The SOA serial: a hash of the records, so it changes when they do.
    serial: u32,
}

/// Whether `name` is `ns` or below it (both lowercase, no trailing dot).
fn within(name: &str, ns: &str) -> bool {
    name == ns
        || name
            .strip_suffix(ns)
            .is_some_and(|head| head.ends_with('.'))
}

impl Zone {
    /// The zone of `discovered` with records of `ttl` seconds. Services
    /// that share a name (in different clusters) answer with all their
    /// endpoints together.
    pub fn build(discovered: &[Discovered], ttl: u32) -> Self {
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        let mut namespaces: BTreeSet<String> = BTreeSet::new();
        for d in discovered {
            let ns = d.namespace.trim_end_matches('.').to_ascii_lowercase();
            let name = d.name.to_ascii_lowercase();
            if ns.is_empty() || name.is_empty() {
                continue;
            }
            let service = format!("{name}.{ns}");
            let srv_name = format!("_{name}._tcp.{ns}");
            for e in &d.endpoints {
                let task = format!("{}.{service}", e.task_id.to_ascii_lowercase());
                let srv = Srv {
                    port: e.port,
                    target: task.clone(),
                };
                nodes.entry(task).or_default().a.insert(e.address);
                let s = nodes.entry(service.clone()).or_default();
                s.a.insert(e.address);
                s.srv.insert(srv.clone());
                nodes.entry(srv_name.clone()).or_default().srv.insert(srv);
            }
            namespaces.insert(ns);
        }
        let mut namespaces: Vec<String> = namespaces.into_iter().collect();
        namespaces.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        let mut empty_non_terminals: HashSet<String> = namespaces.iter().cloned().collect();
        for name in nodes.keys() {
            let Some(ns) = namespaces.iter().find(|ns| within(name, ns)) else {
                continue;
            };
            let mut rest = name.as_str();
            while let Some((_, parent)) = rest.split_once('.') {
                if parent.len() <= ns.len() {
                    break;
                }
                if !nodes.contains_key(parent) {
                    empty_non_terminals.insert(parent.to_owned());
                }
                rest = parent;
            }
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        nodes.hash(&mut h);
        // Never 0, so that a zone with records differs from the empty one.
        let serial = (h.finish() as u32).max(1);
        Self {
            nodes,
            empty_non_terminals,
            namespaces,
            ttl,
            serial,
        }
    }

    /// The served namespaces, longest first.
    pub fn namespaces(&self) -> &[String] {
        &self.namespaces
    }

    /// The answer to `query` (a parsed request). Only standard queries of
    /// one question in class IN are answered: other opcodes are NOTIMP,
    /// other shapes FORMERR, other classes REFUSED.
    pub fn answer(&self, query: &Message) -> Message {
        let mut resp = Message::error_msg(query.id(), query.op_code(), ResponseCode::NoError);
        resp.set_message_type(MessageType::Response)
            .set_recursion_desired(query.recursion_desired())
            .set_recursion_available(false)
            .set_checking_disabled(query.checking_disabled());
        resp.add_queries(query.queries().iter().cloned());
        if let Some(edns) = query.extensions() {
            if edns.version() > 0 {
                // RFC 6891 §6.1.3: BADVERS, answered with EDNS 0.
                resp.set_response_code(ResponseCode::BADVERS);
                resp.set_edns(self.edns());
                return resp;
            }
            resp.set_edns(self.edns());
        }
        if query.message_type() != MessageType::Query {
            resp.set_response_code(ResponseCode::FormErr);
            return resp;
        }
        if query.op_code() != OpCode::Query {
            resp.set_response_code(ResponseCode::NotImp);
            return resp;
        }
        let [q] = query.queries() else {
            resp.set_response_code(ResponseCode::FormErr);
            return resp;
        };
        if q.query_class() != DNSClass::IN {
            resp.set_response_code(ResponseCode::Refused);
            return resp;
        }
        let qname = lower_name(q.name());
        let Some(ns) = self.namespaces.iter().find(|ns| within(&qname, ns)) else {
            resp.set_response_code(ResponseCode::Refused);
            return resp;
        };
        resp.set_authoritative(true);
        let node = self.nodes.get(&qname);
        let name = q.name().clone();
        let mut answers = Vec::new();
        let (want_a, want_srv, want_soa) = match q.query_type() {
            RecordType::A => (true, false, false),
            RecordType::SRV => (false, true, false),
            RecordType::SOA => (false, false, true),
            RecordType::ANY => (true, true, true),
            _ => (false, false, false),
        };
        if let Some(node) = node {
            if want_a {
                answers.extend(
                    node.a
                        .iter()
                        .map(|ip| Record::from_rdata(name.clone(), self.ttl, RData::A(A(*ip)))),
                );
            }
            if want_srv {
                for s in &node.srv {
                    if let Ok(target) = Name::from_ascii(format!("{}.", s.target)) {
                        answers.push(Record::from_rdata(
                            name.clone(),
                            self.ttl,
                            RData::SRV(SRV::new(1, 1, s.port, target)),
                        ));
                    }
                }
            }
        }
        if want_soa && qname == *ns {
            answers.push(self.soa(ns));
        }
        if answers.is_empty() {
            let exists = node.is_some() || self.empty_non_terminals.contains(&qname);
            if !exists {
                resp.set_response_code(ResponseCode::NXDomain);
            }
            resp.add_name_server(self.soa(ns));
        } else {
            resp.add_answers(answers);
        }
        resp
    }

    /// The response of a request that could not even be parsed: FORMERR
    /// with its id, when it has one.
    pub fn form_error(id: u16) -> Message {
        let mut resp = Message::error_msg(id, OpCode::Query, ResponseCode::FormErr);
        resp.set_recursion_available(false);
        resp
    }

    fn edns(&self) -> Edns {
        let mut e = Edns::new();
        e.set_max_payload(MAX_UDP_PAYLOAD);
        e
    }

    /// The namespace's SOA record: TTL and `minimum` are the zone's TTL,
    /// which bounds negative caching.
    fn soa(&self, ns: &str) -> Record {
        let apex = Name::from_ascii(format!("{ns}.")).unwrap_or_else(|_| Name::root());
        let rname = Name::from_ascii(format!("hostmaster.{ns}.")).unwrap_or_else(|_| Name::root());
        let ttl = i32::try_from(self.ttl).unwrap_or(i32::MAX);
        Record::from_rdata(
            apex.clone(),
            self.ttl,
            RData::SOA(SOA::new(
                apex,
                rname,
                self.serial,
                ttl.max(60),
                ttl.max(60),
                86_400,
                self.ttl,
            )),
        )
    }
}

/// `name` lowercase, without the trailing dot.
fn lower_name(name: &Name) -> String {
    let mut s = name.to_lowercase().to_ascii();
    if s.ends_with('.') {
        s.pop();
    }
    s
}

/// The wire form of `resp` in at most `limit` bytes: when it does not
/// fit, the truncated form (question only, TC set), so the client retries
/// over TCP. `None` when even that cannot be encoded.
pub fn encode(resp: &Message, limit: usize) -> Option<Vec<u8>> {
    match resp.to_vec() {
        Ok(bytes) if bytes.len() <= limit => Some(bytes),
        _ => resp.truncate().to_vec().ok().filter(|b| b.len() <= limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::Endpoint;
    use hickory_proto::op::Query;

    const T1: &str = "0123456789abcdef0123456789abcdef";
    const T2: &str = "fedcba9876543210fedcba9876543210";
    const T3: &str = "00000000000000000000000000000003";

    fn ep(task: &str, ip: [u8; 4], port: u16) -> Endpoint {
        Endpoint {
            task_id: task.to_owned(),
            address: Ipv4Addr::from(ip),
            port,
        }
    }

    fn web() -> Vec<Discovered> {
        vec![
            Discovered {
                cluster: "default".into(),
                service: "web".into(),
                namespace: "prod.berth.internal".into(),
                name: "web".into(),
                endpoints: vec![
                    ep(T1, [10, 0, 0, 1], 32001),
                    ep(T2, [10, 0, 0, 2], 32002),
                    // Two tasks on one host: one A record for both.
                    ep(T3, [10, 0, 0, 1], 32003),
                ],
            },
            Discovered {
                cluster: "default".into(),
                service: "idle".into(),
                namespace: "prod.berth.internal".into(),
                name: "idle".into(),
                endpoints: vec![],
            },
        ]
    }

    fn ask(zone: &Zone, name: &str, t: RecordType) -> Message {
        let mut m = Message::new();
        m.set_id(4242)
            .set_message_type(MessageType::Query)
            .set_op_code(OpCode::Query)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        // Through the wire, as the server sees it.
        let bytes = m.to_vec().unwrap();
        let resp = zone.answer(&Message::from_vec(&bytes).unwrap());
        Message::from_vec(&resp.to_vec().unwrap()).unwrap()
    }

    /// The answer section, one line per record (`dig +short` style).
    fn short(m: &Message) -> Vec<String> {
        m.answers()
            .iter()
            .map(|r| format!("{} {} {}", r.name(), r.ttl(), r.data()))
            .collect()
    }

    #[test]
    fn a_records_are_the_distinct_addresses_of_healthy_endpoints() {
        let zone = Zone::build(&web(), 5);
        let r = ask(&zone, "web.prod.berth.internal.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert!(r.authoritative());
        assert!(!r.recursion_available());
        assert_eq!(r.id(), 4242);
        assert_eq!(
            short(&r),
            [
                "web.prod.berth.internal. 5 10.0.0.1",
                "web.prod.berth.internal. 5 10.0.0.2"
            ]
        );
    }

    #[test]
    fn srv_records_name_each_endpoint_under_both_names() {
        let zone = Zone::build(&web(), 5);
        let want = |owner: &str| {
            vec![
                format!("{owner} 5 1 1 32001 {T1}.web.prod.berth.internal."),
                format!("{owner} 5 1 1 32002 {T2}.web.prod.berth.internal."),
                format!("{owner} 5 1 1 32003 {T3}.web.prod.berth.internal."),
            ]
        };
        let r = ask(&zone, "web.prod.berth.internal.", RecordType::SRV);
        let mut got = short(&r);
        got.sort_by_key(|l| l.split(' ').nth(4).map(str::to_owned));
        assert_eq!(got, want("web.prod.berth.internal."));
        let r = ask(&zone, "_web._tcp.prod.berth.internal.", RecordType::SRV);
        let mut got = short(&r);
        got.sort_by_key(|l| l.split(' ').nth(4).map(str::to_owned));
        assert_eq!(got, want("_web._tcp.prod.berth.internal."));
    }

    #[test]
    fn task_names_answer_their_own_address() {
        let zone = Zone::build(&web(), 5);
        let r = ask(
            &zone,
            &format!("{T2}.web.prod.berth.internal."),
            RecordType::A,
        );
        assert_eq!(
            short(&r),
            [format!("{T2}.web.prod.berth.internal. 5 10.0.0.2")]
        );
    }

    #[test]
    fn names_are_case_insensitive_and_echo_the_question() {
        let zone = Zone::build(&web(), 5);
        let r = ask(&zone, "WeB.Prod.BERTH.internal", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NoError);
        assert_eq!(r.answers().len(), 2);
        // The question comes back as asked (the wire makes it absolute).
        assert_eq!(r.queries()[0].name().to_ascii(), "WeB.Prod.BERTH.internal.");
    }

    #[test]
    fn unknown_names_in_a_namespace_are_nxdomain_with_the_soa() {
        let zone = Zone::build(&web(), 7);
        for name in [
            "nope.prod.berth.internal.",
            // A service without healthy tasks has no records.
            "idle.prod.berth.internal.",
            "x.web.prod.berth.internal.",
        ] {
            let r = ask(&zone, name, RecordType::A);
            assert_eq!(r.response_code(), ResponseCode::NXDomain, "{name}");
            assert!(r.answers().is_empty());
            let soa = &r.name_servers()[0];
            assert_eq!(soa.record_type(), RecordType::SOA);
            assert_eq!(soa.name().to_ascii(), "prod.berth.internal.");
            assert_eq!(soa.ttl(), 7);
            let RData::SOA(s) = soa.data() else {
                panic!("not an SOA: {soa}")
            };
            assert_eq!(s.minimum(), 7);
        }
    }

    #[test]
    fn names_that_exist_without_the_type_asked_are_nodata() {
        let zone = Zone::build(&web(), 5);
        for (name, t) in [
            ("web.prod.berth.internal.", RecordType::AAAA),
            ("_tcp.prod.berth.internal.", RecordType::A),
            ("prod.berth.internal.", RecordType::A),
            ("_web._tcp.prod.berth.internal.", RecordType::A),
        ] {
            let r = ask(&zone, name, t);
            assert_eq!(r.response_code(), ResponseCode::NoError, "{name} {t}");
            assert!(r.answers().is_empty(), "{name} {t}");
            assert_eq!(r.name_servers()[0].record_type(), RecordType::SOA);
        }
        let r = ask(&zone, "prod.berth.internal.", RecordType::SOA);
        assert_eq!(r.answers()[0].record_type(), RecordType::SOA);
    }

    #[test]
    fn names_outside_every_namespace_are_refused() {
        let zone = Zone::build(&web(), 5);
        for name in ["example.com.", "berth.internal.", "xprod.berth.internal."] {
            let r = ask(&zone, name, RecordType::A);
            assert_eq!(r.response_code(), ResponseCode::Refused, "{name}");
            assert!(!r.authoritative());
            assert!(r.answers().is_empty() && r.name_servers().is_empty());
        }
        let empty = Zone::build(&[], 5);
        let r = ask(&empty, "web.prod.berth.internal.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::Refused);
    }

    #[test]
    fn the_longest_namespace_holds_a_name() {
        let mut d = web();
        d.push(Discovered {
            cluster: "default".into(),
            service: "api".into(),
            namespace: "berth.internal".into(),
            name: "api".into(),
            endpoints: vec![ep(T1, [10, 0, 0, 9], 1)],
        });
        let zone = Zone::build(&d, 5);
        assert_eq!(zone.namespaces(), ["prod.berth.internal", "berth.internal"]);
        let r = ask(&zone, "api.berth.internal.", RecordType::A);
        assert_eq!(short(&r), ["api.berth.internal. 5 10.0.0.9"]);
        let r = ask(&zone, "nope.prod.berth.internal.", RecordType::A);
        assert_eq!(
            r.name_servers()[0].name().to_ascii(),
            "prod.berth.internal."
        );
        // The shorter namespace now serves `prod.berth.internal`'s parent.
        let r = ask(&zone, "other.berth.internal.", RecordType::A);
        assert_eq!(r.response_code(), ResponseCode::NXDomain);
    }

    #[test]
    fn services_sharing_a_name_answer_together() {
        let mut d = web();
        d.push(Discovered {
            cluster: "other".into(),
            service: "web".into(),
            namespace: "prod.berth.internal".into(),
            name: "web".into(),
            endpoints: vec![ep("aa", [10, 0, 0, 3], 1)],
        });
        let zone = Zone::build(&d, 5);
        let r = ask(&zone, "web.prod.berth.internal.", RecordType::A);
        assert_eq!(r.answers().len(), 3);
    }

    #[test]
    fn the_serial_follows_the_records() {
        let a = Zone::build(&web(), 5);
        assert_eq!(a.serial, Zone::build(&web(), 5).serial);
        let mut d = web();
        d[0].endpoints.pop();
        assert_ne!(a.serial, Zone::build(&d, 5).serial);
    }

    #[test]
    fn other_opcodes_classes_and_shapes_are_refused_politely() {
        let zone = Zone::build(&web(), 5);
        let q = Query::query(
            Name::from_ascii("web.prod.berth.internal.").unwrap(),
            RecordType::A,
        );
        let mut m = Message::new();
        m.set_op_code(OpCode::Update).add_query(q.clone());
        assert_eq!(zone.answer(&m).response_code(), ResponseCode::NotImp);
        let mut m = Message::new();
        m.add_query(q.clone()).add_query(q.clone());
        assert_eq!(zone.answer(&m).response_code(), ResponseCode::FormErr);
        let mut m = Message::new();
        assert_eq!(zone.answer(&m).response_code(), ResponseCode::FormErr);
        let mut chaos = q.clone();
        chaos.set_query_class(DNSClass::CH);
        m.add_query(chaos);
        assert_eq!(zone.answer(&m).response_code(), ResponseCode::Refused);
        let mut m = Message::new();
        m.set_message_type(MessageType::Response).add_query(q);
        assert_eq!(zone.answer(&m).response_code(), ResponseCode::FormErr);
    }

    #[test]
    fn edns_is_answered_with_edns() {
        let zone = Zone::build(&web(), 5);
        let mut m = Message::new();
        m.add_query(Query::query(
            Name::from_ascii("web.prod.berth.internal.").unwrap(),
            RecordType::A,
        ));
        assert!(zone.answer(&m).extensions().is_none());
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
        let r = zone.answer(&m);
        assert_eq!(
            r.extensions().as_ref().map(Edns::max_payload),
            Some(MAX_UDP_PAYLOAD)
        );
    }

    #[test]
    fn answers_too_large_for_udp_are_truncated() {
        let endpoints = (0..100u8)
            .map(|i| ep(&format!("{i:032x}"), [10, 0, 1, i], 30000 + u16::from(i)))
            .collect();
        let d = vec![Discovered {
            cluster: "default".into(),
            service: "big".into(),
            namespace: "prod.berth.internal".into(),
            name: "big".into(),
            endpoints,
        }];
        let zone = Zone::build(&d, 5);
        let mut m = Message::new();
        m.set_id(7).add_query(Query::query(
            Name::from_ascii("big.prod.berth.internal.").unwrap(),
            RecordType::SRV,
        ));
        let resp = zone.answer(&m);
        assert_eq!(resp.answers().len(), 100);
        let udp = encode(&resp, 512).unwrap();
        assert!(udp.len() <= 512);
        let back = Message::from_vec(&udp).unwrap();
        assert!(back.truncated());
        assert!(back.answers().is_empty());
        assert_eq!(back.id(), 7);
        let tcp = encode(&resp, usize::from(u16::MAX)).unwrap();
        assert_eq!(Message::from_vec(&tcp).unwrap().answers().len(), 100);
    }
}
