//! A real DNS server for the tests: hickory-server on 127.0.0.1 (UDP and TCP, a random port)
//! answering from an in-memory zone the test edits, with faults (SERVFAIL, no answer) on
//! demand, and a log of every query so tests can assert what was *not* asked.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{Header, HeaderCounts, Metadata, ResponseCode};
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, SOA, SRV};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};

/// A record in the test zone.
#[derive(Clone, Debug)]
pub enum Rr {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    /// priority, weight, port, target (`"."` for "no service").
    Srv(u16, u16, u16, String),
}

/// A misbehaviour for one name and type.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    ServFail,
    /// Never answer (the client times out).
    Silence,
}

#[derive(Default)]
struct Zone {
    records: HashMap<String, Vec<Rr>>,
    faults: HashMap<(String, RecordType), Fault>,
    /// Extra records appended to answers of one (name, type): e.g. a stray A in an SRV answer.
    extras: HashMap<(String, RecordType), Vec<Rr>>,
    /// Answers that change on every query of (name, type): the DNS-rebinding trick.
    rotations: HashMap<(String, RecordType), (usize, Vec<Rr>)>,
    ttl: u32,
    /// When set, answers without records carry the zone's SOA with this TTL and minimum, so
    /// resolvers may cache "no such records" for it (RFC 2308). Unset, as by default, they
    /// carry none and must not be cached.
    negative_ttl: Option<u32>,
    log: Vec<(String, RecordType)>,
}

/// The running DNS server. Stops when dropped.
pub struct TestDns {
    pub addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    _server: tokio::task::JoinHandle<()>,
}

fn key(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

impl TestDns {
    pub async fn start() -> TestDns {
        let zone = Arc::new(Mutex::new(Zone {
            ttl: 300,
            ..Zone::default()
        }));
        // UDP and TCP on the same port: take a free TCP port, then the same UDP port.
        let (udp, tcp) = loop {
            let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
            if let Ok(udp) = UdpSocket::bind(tcp.local_addr().unwrap()).await {
                break (udp, tcp);
            }
        };
        let addr = udp.local_addr().unwrap();
        let mut server = Server::new(Handler { zone: zone.clone() });
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 1 << 16);
        let task = tokio::spawn(async move {
            let _ = server.block_until_done().await;
        });
        TestDns {
            addr,
            zone,
            _server: task,
        }
    }

    pub fn add(&self, name: &str, rr: Rr) -> &Self {
        self.zone
            .lock()
            .unwrap()
            .records
            .entry(key(name))
            .or_default()
            .push(rr);
        self
    }

    pub fn a(&self, name: &str, ip: Ipv4Addr) -> &Self {
        self.add(name, Rr::A(ip))
    }

    pub fn aaaa(&self, name: &str, ip: Ipv6Addr) -> &Self {
        self.add(name, Rr::Aaaa(ip))
    }

    pub fn cname(&self, name: &str, target: &str) -> &Self {
        self.add(name, Rr::Cname(target.into()))
    }

    pub fn srv(&self, name: &str, priority: u16, weight: u16, port: u16, target: &str) -> &Self {
        self.add(name, Rr::Srv(priority, weight, port, target.into()))
    }

    pub fn fault(&self, name: &str, rtype: RecordType, fault: Fault) -> &Self {
        self.zone
            .lock()
            .unwrap()
            .faults
            .insert((key(name), rtype), fault);
        self
    }

    pub fn extra(&self, name: &str, rtype: RecordType, rr: Rr) -> &Self {
        self.zone
            .lock()
            .unwrap()
            .extras
            .entry((key(name), rtype))
            .or_default()
            .push(rr);
        self
    }

    /// Answers each query for `name`/`rtype` with the next of `answers`, in turn.
    pub fn rotate(&self, name: &str, rtype: RecordType, answers: Vec<Rr>) -> &Self {
        self.zone
            .lock()
            .unwrap()
            .rotations
            .insert((key(name), rtype), (0, answers));
        self
    }

    /// Sets the TTL of every answer from now on.
    pub fn set_ttl(&self, ttl: u32) {
        self.zone.lock().unwrap().ttl = ttl;
    }

    /// Sets the negative TTL (RFC 2308) that answers without records carry from now on, or
    /// none (no SOA in them).
    pub fn set_negative_ttl(&self, ttl: Option<u32>) {
        self.zone.lock().unwrap().negative_ttl = ttl;
    }

    /// Removes every record of `name`.
    pub fn clear(&self, name: &str) {
        self.zone.lock().unwrap().records.remove(&key(name));
    }

    /// Every query received, as (lower-case name without dot, type).
    pub fn queries(&self) -> Vec<(String, RecordType)> {
        self.zone.lock().unwrap().log.clone()
    }

    /// Whether a query for `name` of `rtype` was received.
    pub fn asked(&self, name: &str, rtype: RecordType) -> bool {
        self.queries()
            .iter()
            .any(|(n, t)| *n == key(name) && *t == rtype)
    }
}

fn to_record(owner: &Name, ttl: u32, rr: &Rr) -> Record {
    let data = match rr {
        Rr::A(ip) => RData::A(A(*ip)),
        Rr::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        Rr::Cname(t) => RData::CNAME(CNAME(Name::from_ascii(format!("{}.", key(t))).unwrap())),
        Rr::Srv(p, w, port, t) => {
            let target = if t == "." {
                Name::root()
            } else {
                Name::from_ascii(format!("{}.", key(t))).unwrap()
            };
            RData::SRV(SRV::new(*p, *w, *port, target))
        }
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

fn matches(rr: &Rr, rtype: RecordType) -> bool {
    matches!(
        (rr, rtype),
        (Rr::A(_), RecordType::A)
            | (Rr::Aaaa(_), RecordType::AAAA)
            | (Rr::Srv(..), RecordType::SRV)
            | (Rr::Cname(_), RecordType::CNAME)
    )
}

struct Handler {
    zone: Arc<Mutex<Zone>>,
}

enum Plan {
    /// Response code, answers, and the SOA for the authority section.
    Answer(ResponseCode, Vec<Record>, Option<Box<Record>>),
    Silence,
}

/// The SOA of the test zone `test.`, with `ttl` as its own TTL and its minimum.
fn soa(ttl: u32) -> Record {
    let name = |n: &str| Name::from_ascii(n).unwrap();
    let soa = SOA::new(
        name("ns.test."),
        name("hostmaster.test."),
        1,
        3600,
        600,
        86_400,
        ttl,
    );
    Record::from_rdata(name("test."), ttl, RData::SOA(soa))
}

impl Handler {
    fn plan(&self, qname: &str, rtype: RecordType) -> Plan {
        let mut zone = self.zone.lock().unwrap();
        zone.log.push((qname.to_owned(), rtype));
        match zone.faults.get(&(qname.to_owned(), rtype)) {
            Some(Fault::ServFail) => return Plan::Answer(ResponseCode::ServFail, vec![], None),
            Some(Fault::Silence) => return Plan::Silence,
            None => {}
        }
        let ttl = zone.ttl;
        if let Some((next, list)) = zone.rotations.get_mut(&(qname.to_owned(), rtype)) {
            let rr = list[*next % list.len()].clone();
            *next += 1;
            let owner = Name::from_ascii(format!("{qname}.")).unwrap();
            return Plan::Answer(ResponseCode::NoError, vec![to_record(&owner, 0, &rr)], None);
        }
        let negative = zone.negative_ttl.map(|ttl| Box::new(soa(ttl)));
        let mut answers = Vec::new();
        let mut name = qname.to_owned();
        // Follow CNAMEs inside the zone, as an authoritative server does.
        for _ in 0..8 {
            let Some(rrs) = zone.records.get(&name) else {
                if answers.is_empty() {
                    return Plan::Answer(ResponseCode::NXDomain, answers, negative);
                }
                return Plan::Answer(ResponseCode::NoError, answers, None);
            };
            let owner = Name::from_ascii(format!("{name}.")).unwrap();
            if rtype != RecordType::CNAME
                && let Some(Rr::Cname(target)) = rrs.iter().find(|r| matches!(r, Rr::Cname(_)))
            {
                answers.push(to_record(&owner, ttl, &Rr::Cname(target.clone())));
                name = key(target);
                continue;
            }
            answers.extend(
                rrs.iter()
                    .filter(|r| matches(r, rtype))
                    .map(|r| to_record(&owner, ttl, r)),
            );
            if let Some(extra) = zone.extras.get(&(name.clone(), rtype)) {
                answers.extend(extra.iter().map(|r| to_record(&owner, ttl, r)));
            }
            break;
        }
        let soa = if answers.iter().any(|r| r.record_type() == rtype) {
            None
        } else {
            negative
        };
        Plan::Answer(ResponseCode::NoError, answers, soa)
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let info = request.request_info().expect("one query");
        let qname = key(&info.query.name().to_string());
        let rtype = info.query.query_type();
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.authoritative = true;
        match self.plan(&qname, rtype) {
            Plan::Silence => ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            }),
            Plan::Answer(code, answers, soa) => {
                metadata.response_code = code;
                let builder = MessageResponseBuilder::from_message_request(request);
                let response = builder.build(metadata, answers.iter(), [], soa.as_deref(), []);
                response_handle
                    .send_response(response)
                    .await
                    .unwrap_or_else(|_| {
                        ResponseInfo::from(Header {
                            metadata,
                            counts: HeaderCounts::default(),
                        })
                    })
            }
        }
    }
}
