//! MariaDB global transaction ids and positions.
//!
//! A position (`@@gtid_binlog_pos`, `@slave_connect_state`) names, per replication domain, the
//! last transaction seen: `domain-server-sequence`, comma-separated, e.g. `0-1-42,1-2-7`.
//! In a domain, sequence numbers grow with the binlog order (`gtid_strict_mode`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// One transaction's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// The server that wrote it first.
    pub server: u32,
    /// Sequence number in the domain.
    pub sequence: u64,
}

impl Gtid {
    /// Decodes a MariaDB `GTID_EVENT` (type 162) body: sequence (8 bytes), domain (4 bytes),
    /// flags (1 byte), little-endian; the server id comes from the event header. Returns the
    /// id and whether the event group is a single statement with no `COMMIT`/`XID` after it
    /// (`FL_STANDALONE`: DDL).
    pub fn from_event(server: u32, body: &[u8]) -> Option<(Self, bool)> {
        let sequence = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
        let flags = *body.get(12)?;
        let gtid = Self {
            domain,
            server,
            sequence,
        };
        Some((gtid, flags & 1 != 0))
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.sequence)
    }
}

/// A binlog position as MariaDB's GTID state: per domain, the last transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPosition(BTreeMap<u32, (u32, u64)>);

impl GtidPosition {
    /// The position once `gtid` is applied.
    pub fn advance(&mut self, gtid: Gtid) {
        self.0.insert(gtid.domain, (gtid.server, gtid.sequence));
    }

    /// True when nothing was seen in any domain (a server that never wrote a transaction).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Transactions `ahead` has after this position, summed over its domains (a domain this
    /// position has not seen counts whole).
    pub fn transactions_before(&self, ahead: &Self) -> u64 {
        ahead
            .0
            .iter()
            .map(|(domain, (_, seq))| {
                seq.saturating_sub(self.0.get(domain).map_or(0, |(_, mine)| *mine))
            })
            .sum()
    }

    /// This position in the domains `other` names only (all of it when `other` is empty): a
    /// server's position as far as a reader that follows those domains can reach it (a
    /// Galera node's own domain, for writes that do not replicate, is in no other node's
    /// binlog).
    pub fn within_domains_of(&self, other: &Self) -> Self {
        if other.0.is_empty() {
            return self.clone();
        }
        Self(
            self.0
                .iter()
                .filter(|(domain, _)| other.0.contains_key(domain))
                .map(|(d, v)| (*d, *v))
                .collect(),
        )
    }

    /// True when this position is at or past `other` in every domain `other` names.
    pub fn covers(&self, other: &Self) -> bool {
        other
            .0
            .iter()
            .all(|(domain, (_, seq))| self.0.get(domain).is_some_and(|(_, mine)| mine >= seq))
    }
}

impl fmt::Display for GtidPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (domain, (server, sequence))) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{domain}-{server}-{sequence}")?;
        }
        Ok(())
    }
}

/// A GTID position that is not `domain-server-sequence[,…]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a MariaDB GTID position (domain-server-sequence, comma-separated)")]
pub struct BadPosition(pub String);

impl FromStr for GtidPosition {
    type Err = BadPosition;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadPosition(text.to_owned());
        let mut position = Self::default();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut fields = part.split('-');
            let (Some(d), Some(s), Some(n), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                return Err(bad());
            };
            let gtid = Gtid {
                domain: d.parse().map_err(|_| bad())?,
                server: s.parse().map_err(|_| bad())?,
                sequence: n.parse().map_err(|_| bad())?,
            };
            if position.0.contains_key(&gtid.domain) {
                return Err(bad());
            }
            position.advance(gtid);
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_servers_own_domain_does_not_hold_back_a_reader_of_another_node() {
        let reader: GtidPosition = "1-1-40".parse().unwrap();
        // The writable node's position, with a write of its own domain (wsrep_on=OFF).
        let server: GtidPosition = "1-1-40,11-1-3".parse().unwrap();
        assert!(!reader.covers(&server));
        assert_eq!(server.within_domains_of(&reader).to_string(), "1-1-40");
        assert!(reader.covers(&server.within_domains_of(&reader)));
        let ahead: GtidPosition = "1-1-41,11-1-3".parse().unwrap();
        assert!(!reader.covers(&ahead.within_domains_of(&reader)));
        assert_eq!(
            server.within_domains_of(&GtidPosition::default()),
            server,
            "an empty reader position filters nothing"
        );
    }

    #[test]
    fn positions_round_trip_and_compare_per_domain() {
        let p: GtidPosition = "0-1-42, 1-2-7".parse().unwrap();
        assert_eq!(p.to_string(), "0-1-42,1-2-7");
        assert!("".parse::<GtidPosition>().unwrap().is_empty());
        let behind: GtidPosition = "0-1-41".parse().unwrap();
        assert!(p.covers(&behind));
        assert!(!behind.covers(&p));
        let other_domain: GtidPosition = "0-1-1,2-1-1".parse().unwrap();
        assert!(!p.covers(&other_domain), "a domain it has not seen");
        assert_eq!(behind.transactions_before(&p), 1 + 7);
        assert_eq!(p.transactions_before(&behind), 0);
        for bad in ["0-1", "0-1-2-3", "a-1-2", "0-1-2,0-1-3", "-1-2"] {
            assert!(bad.parse::<GtidPosition>().is_err(), "{bad}");
        }
    }

    #[test]
    fn advancing_replaces_the_domains_last_transaction() {
        let mut p: GtidPosition = "0-1-5".parse().unwrap();
        p.advance(Gtid {
            domain: 0,
            server: 2,
            sequence: 6,
        });
        p.advance(Gtid {
            domain: 3,
            server: 2,
            sequence: 1,
        });
        assert_eq!(p.to_string(), "0-2-6,3-2-1");
    }

    #[test]
    fn a_gtid_event_body_decodes_with_its_standalone_flag() {
        let mut body = 77u64.to_le_bytes().to_vec();
        body.extend(5u32.to_le_bytes());
        body.push(1);
        body.extend([0u8; 6]);
        let (gtid, standalone) = Gtid::from_event(9, &body).unwrap();
        assert_eq!(gtid.to_string(), "5-9-77");
        assert!(standalone);
        body[12] = 2; // group commit id follows, not standalone
        assert!(!Gtid::from_event(9, &body).unwrap().1);
        assert!(Gtid::from_event(9, &body[..10]).is_none());
    }
}
