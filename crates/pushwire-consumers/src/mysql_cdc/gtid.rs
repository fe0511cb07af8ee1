//! MariaDB global transaction ids: `domain-server-seq`, and the replication state a replica
//! keeps (the last GTID applied per replication domain, as in `gtid_slave_pos`), which is also
//! what `@slave_connect_state` takes to resume a binlog dump right after those transactions.

use std::collections::BTreeMap;
use std::fmt;

/// Binlog event type of a MariaDB GTID event (it starts every event group).
pub(super) const MARIADB_GTID_EVENT: u8 = 162;
/// GTID event flag: the group is one statement without BEGIN / COMMIT (DDL).
const FL_STANDALONE: u8 = 1;

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// Server that committed the transaction.
    pub server: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl Gtid {
    /// `domain-server-seq`.
    pub(super) fn parse(s: &str) -> Result<Gtid, String> {
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().unwrap_or("");
        let (d, sv, q) = (next(), next(), next());
        let bad = || format!("{s:?} is not a GTID (domain-server-seq)");
        Ok(Gtid {
            domain: d.parse().map_err(|_| bad())?,
            server: sv.parse().map_err(|_| bad())?,
            seq: q.parse().map_err(|_| bad())?,
        })
    }

    /// The GTID of a GTID event: sequence number (8 bytes LE) and domain (4 bytes LE) at the
    /// start of the event's data, the server id from its header; and whether the group is a
    /// standalone statement. `None` when the data is too short.
    pub(super) fn from_event(data: &[u8], server_id: u32) -> Option<(Gtid, bool)> {
        let seq = u64::from_le_bytes(data.get(0..8)?.try_into().ok()?);
        let domain = u32::from_le_bytes(data.get(8..12)?.try_into().ok()?);
        let flags = *data.get(12)?;
        Some((
            Gtid {
                domain,
                server: server_id,
                seq,
            },
            flags & FL_STANDALONE != 0,
        ))
    }
}

/// The last GTID per replication domain: where a binlog dump resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct GtidState {
    domains: BTreeMap<u32, Gtid>,
}

impl GtidState {
    /// A comma-separated GTID list (`0-1-100,1-2-7`); empty = nothing applied yet.
    pub(super) fn parse(s: &str) -> Result<GtidState, String> {
        let mut state = GtidState::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let g = Gtid::parse(part)?;
            if state.domains.insert(g.domain, g).is_some() {
                return Err(format!("{s:?}: domain {} twice", g.domain));
            }
        }
        Ok(state)
    }

    /// Records `g` as the last transaction of its domain.
    pub(super) fn apply(&mut self, g: Gtid) {
        self.domains.insert(g.domain, g);
    }
}

impl fmt::Display for GtidState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_parse_apply_and_print_in_domain_order() {
        let mut s = GtidState::parse("1-2-7, 0-1-100").expect("list");
        assert_eq!(s.to_string(), "0-1-100,1-2-7");
        s.apply(Gtid::parse("0-3-101").expect("gtid"));
        s.apply(Gtid::parse("5-1-1").expect("gtid"));
        assert_eq!(s.to_string(), "0-3-101,1-2-7,5-1-1");
        assert_eq!(GtidState::parse("").expect("empty").to_string(), "");
        assert!(GtidState::parse("0-1").is_err());
        assert!(GtidState::parse("0-1-x").is_err());
        assert!(
            GtidState::parse("0-1-1,0-2-2").is_err(),
            "one GTID per domain"
        );
    }

    #[test]
    fn gtid_events_decode() {
        let mut data = 4242u64.to_le_bytes().to_vec();
        data.extend_from_slice(&3u32.to_le_bytes());
        data.push(FL_STANDALONE);
        let (g, standalone) = Gtid::from_event(&data, 9).expect("event");
        assert_eq!(g.to_string(), "3-9-4242");
        assert!(standalone);
        data[12] = 0;
        assert!(!Gtid::from_event(&data, 9).expect("event").1);
        assert!(Gtid::from_event(&data[..10], 9).is_none());
    }
}
