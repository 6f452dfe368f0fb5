//! A BGP router played by tests over loopback TCP, speaking FerroLB's own wire format.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use ferrolb_bgp::message::{Family, GracefulRestart, Message, Notification, Open};
use ferrolb_bgp::update::{Routes, read};
use ferrolb_bgp::wire;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Generous: these machines are shared; nothing here is a timed assertion.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The router's side of one connection.
pub struct Router {
    /// The connection.
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Router {
    pub async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
            .await
            .expect("the speaker dials")
            .expect("accepted");
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// The next whole message, with its bytes; `None` at EOF.
    pub async fn next(&mut self) -> Option<(Message, Vec<u8>)> {
        loop {
            if let Some(len) = wire::message_len(&self.buf).expect("the speaker sends valid headers")
                && self.buf.len() >= len
            {
                let bytes: Vec<u8> = self.buf.drain(..len).collect();
                return Some((wire::decode(&bytes).expect("valid message"), bytes));
            }
            let n = tokio::time::timeout(PATIENCE, self.stream.read_buf(&mut self.buf))
                .await
                .expect("the speaker speaks")
                .expect("read");
            if n == 0 {
                return None;
            }
        }
    }

    /// Reads on (past KEEPALIVEs and UPDATEs) to the speaker's NOTIFICATION.
    pub async fn notification(&mut self) -> Notification {
        loop {
            if let (Message::Notification(n), _) = self.next().await.expect("a NOTIFICATION before the close")
            {
                return n;
            }
        }
    }

    pub async fn send(&mut self, message: &Message) {
        self.stream
            .write_all(&wire::encode(message))
            .await
            .expect("write");
    }

    /// Answers the speaker's OPEN and KEEPALIVE: the session is Established.
    pub async fn establish(&mut self, hold_time: u16) {
        self.establish_with(hold_time, None).await;
    }

    /// As [`Router::establish`], offering `graceful_restart` in the router's OPEN; the
    /// speaker's OPEN.
    pub async fn establish_with(
        &mut self,
        hold_time: u16,
        graceful_restart: Option<GracefulRestart>,
    ) -> Open {
        let (Message::Open(open), _) = self.next().await.expect("an OPEN") else {
            panic!("not an OPEN")
        };
        assert_eq!(open.asn, 64512);
        self.send(&Message::Open(Open {
            version: 4,
            asn: 64513,
            hold_time,
            router_id: Ipv4Addr::new(10, 0, 0, 254),
            families: Some(BTreeSet::from([Family::Ipv4Unicast, Family::Ipv6Unicast])),
            four_octet: true,
            route_refresh: true,
            graceful_restart,
        }))
        .await;
        self.send(&Message::Keepalive).await;
        assert_eq!(self.next().await.map(|m| m.0), Some(Message::Keepalive));
        open
    }

    /// Reads UPDATEs until `end_of_ribs` End-of-RIB markers have come: (announced,
    /// withdrawn), and the last announcement's attributes.
    pub async fn updates(&mut self, mut end_of_ribs: usize, mut wanted_changes: usize) -> Routes {
        let mut all = Routes::default();
        while end_of_ribs + wanted_changes > 0 {
            match self.next().await.expect("UPDATEs") {
                (Message::Update, bytes) => {
                    let routes = read(&bytes).expect("readable");
                    let empty = routes.announced.is_empty() && routes.withdrawn.is_empty();
                    if empty {
                        end_of_ribs -= 1;
                    } else {
                        wanted_changes = wanted_changes.saturating_sub(1);
                    }
                    all.announced.extend(routes.announced);
                    all.withdrawn.extend(routes.withdrawn);
                    all.attributes.extend(routes.attributes);
                }
                (Message::Keepalive, _) => {}
                (other, _) => panic!("unexpected {other:?}"),
            }
        }
        all
    }
}

/// Checks that `routes` announce exactly `prefix`, with the session's loopback address
/// as next hop and the tests' community 65000:1.
pub fn assert_announced(routes: &Routes, prefix: &str) {
    let expected: ipnet::IpNet = prefix.parse().expect("a prefix");
    assert_eq!(routes.announced, [expected]);
    assert_eq!(
        routes.attributes[&3],
        [127, 0, 0, 1],
        "NEXT_HOP: the session's local address"
    );
    assert_eq!(routes.attributes[&8], [0xfd, 0xe8, 0, 1], "community 65000:1");
}
