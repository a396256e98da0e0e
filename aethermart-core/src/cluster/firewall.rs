//! nftables rules for a cluster's node traffic: MariaDB (3306/tcp), Galera replication
//! (4567/tcp and udp), incremental state transfer (4568/tcp) and state snapshot transfer
//! (4444/tcp) — those are the defaults, see [`ClusterPorts`] — are accepted from the cluster's
//! nodes only (MariaDB also from listed clients and
//! from the host itself over loopback) and dropped from everyone else. Nothing else is touched:
//! the chain's policy is `accept`, so the host's other rules (SSH included) still decide about
//! all other traffic.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

/// The ports of a cluster's node traffic (MariaDB's and Galera's defaults by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterPorts {
    /// MariaDB clients and replicas (`port`), TCP.
    pub mariadb: u16,
    /// State snapshot transfer (`wsrep_sst_receive_address`), TCP.
    pub sst: u16,
    /// Galera replication (`wsrep_cluster_address`), TCP and UDP.
    pub replication: u16,
    /// Incremental state transfer (`ist.recv_addr`), TCP.
    pub ist: u16,
}

impl Default for ClusterPorts {
    fn default() -> Self {
        Self {
            mariadb: 3306,
            sst: 4444,
            replication: 4567,
            ist: 4568,
        }
    }
}

impl ClusterPorts {
    /// The TCP ports only the cluster's nodes may reach, ascending.
    fn tcp(&self) -> Vec<u16> {
        let mut ports = vec![self.mariadb, self.sst, self.replication, self.ist];
        ports.sort_unstable();
        ports
    }

    /// Each port set, non-zero and different from the others.
    fn check(&self) -> Result<(), FirewallError> {
        let named = [
            ("--mariadb-port", self.mariadb),
            ("--sst-port", self.sst),
            ("--replication-port", self.replication),
            ("--ist-port", self.ist),
        ];
        for (i, (flag, port)) in named.iter().enumerate() {
            if *port == 0 {
                return Err(FirewallError::BadPort { flag, port: 0 });
            }
            if let Some((other, _)) = named[..i].iter().find(|(_, p)| p == port) {
                return Err(FirewallError::SamePort {
                    flag,
                    other,
                    port: *port,
                });
            }
        }
        Ok(())
    }
}
/// The nftables table the rules live in (replaced as a whole when loaded again).
pub const TABLE: &str = "aethermart_cluster";

/// Why the rules could not be rendered; names the argument at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FirewallError {
    /// A cluster has at least two nodes.
    #[error("a cluster needs at least two --node addresses, got {0}")]
    TooFewNodes(usize),
    /// An argument is not an address (or network, for clients).
    #[error("{flag} {value:?} is not {expected}")]
    BadAddress {
        /// `--node` or `--client`.
        flag: &'static str,
        /// The argument as given.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// The same node is given twice.
    #[error("--node {0} is given twice")]
    Duplicate(IpAddr),
    /// A port is 0.
    #[error("{flag} {port} is not a port")]
    BadPort {
        /// The flag.
        flag: &'static str,
        /// Its value.
        port: u16,
    },
    /// Two kinds of traffic are given the same port.
    #[error("{flag} {port} is also {other}")]
    SamePort {
        /// The flag.
        flag: &'static str,
        /// The flag given the same port before it.
        other: &'static str,
        /// The port.
        port: u16,
    },
}

/// An address or network (`10.0.1.0/24`) with a valid prefix length.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Network {
    addr: IpAddr,
    prefix: Option<u8>,
}

impl Network {
    fn parse(value: &str) -> Option<Self> {
        let (addr, prefix) = match value.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (value, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        prefix
            .is_none_or(|p| p <= max)
            .then_some(Self { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{}/{p}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Renders an `nft -f` script for every node of the cluster whose addresses are `nodes`, its
/// traffic on `ports`; `clients` (addresses or networks) may reach MariaDB's port as well.
/// Loading it again replaces the previous version of the table.
pub fn render_nftables(
    nodes: &[&str],
    clients: &[&str],
    ports: &ClusterPorts,
) -> Result<String, FirewallError> {
    ports.check()?;
    let mut node_addrs = BTreeSet::new();
    for value in nodes {
        let addr: IpAddr = value.parse().map_err(|_| FirewallError::BadAddress {
            flag: "--node",
            value: (*value).to_owned(),
            expected: "an IPv4 or IPv6 address",
        })?;
        if !node_addrs.insert(addr) {
            return Err(FirewallError::Duplicate(addr));
        }
    }
    if node_addrs.len() < 2 {
        return Err(FirewallError::TooFewNodes(node_addrs.len()));
    }
    let client_nets = clients
        .iter()
        .map(|value| {
            Network::parse(value).ok_or_else(|| FirewallError::BadAddress {
                flag: "--client",
                value: (*value).to_owned(),
                expected: "an address or a network (ADDRESS/PREFIX)",
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;

    let ClusterPorts {
        mariadb,
        sst,
        replication,
        ist,
    } = *ports;
    let tcp_ports = ports
        .tcp()
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let node_list = node_addrs.iter().map(IpAddr::to_string).collect::<Vec<_>>();
    let mut out = String::new();
    let _ = writeln!(out, "#!/usr/sbin/nft -f");
    let _ = writeln!(
        out,
        "# AetherMart cluster traffic: MariaDB {mariadb}/tcp, Galera replication {replication}/tcp+udp, IST {ist}/tcp\n\
         # and SST {sst}/tcp are accepted from the cluster's nodes only, and dropped from everyone\n\
         # else (loopback stays open to the host itself). All other traffic is left to the host's\n\
         # other rules (policy accept).\n\
         # Nodes: {}{}\n\
         # Load on every node with `nft -f FILE`; loading again replaces this table as a whole.",
        node_list.join(", "),
        if client_nets.is_empty() {
            String::new()
        } else {
            let clients: Vec<String> = client_nets.iter().map(Network::to_string).collect();
            format!(
                "\n# MariaDB clients ({mariadb} only): {}",
                clients.join(", ")
            )
        },
    );
    // Creating, then deleting, makes the load work whether or not the table exists.
    let _ = writeln!(out, "\ntable inet {TABLE}\ndelete table inet {TABLE}\n");
    let _ = writeln!(out, "table inet {TABLE} {{");
    let families = [("v4", "ipv4_addr", "ip"), ("v6", "ipv6_addr", "ip6")];
    // The host itself (local clients, health checks) over loopback.
    let mut rules = vec![r#"iif "lo" accept"#.to_owned()];
    for (suffix, addr_type, match_kw) in families {
        let is_family = |a: &IpAddr| a.is_ipv4() == (suffix == "v4");
        let members: Vec<String> = node_list
            .iter()
            .zip(&node_addrs)
            .filter(|(_, a)| is_family(a))
            .map(|(s, _)| s.clone())
            .collect();
        if !members.is_empty() {
            write_set(
                &mut out,
                &format!("cluster_nodes_{suffix}"),
                addr_type,
                false,
                &members,
            );
            rules.push(format!(
                "{match_kw} saddr @cluster_nodes_{suffix} tcp dport {{ {tcp_ports} }} accept"
            ));
            rules.push(format!(
                "{match_kw} saddr @cluster_nodes_{suffix} udp dport {replication} accept"
            ));
        }
        let clients: Vec<String> = client_nets
            .iter()
            .filter(|n| is_family(&n.addr))
            .map(Network::to_string)
            .collect();
        if !clients.is_empty() {
            write_set(
                &mut out,
                &format!("mariadb_clients_{suffix}"),
                addr_type,
                true,
                &clients,
            );
            rules.push(format!(
                "{match_kw} saddr @mariadb_clients_{suffix} tcp dport {mariadb} accept"
            ));
        }
    }
    rules.push(format!("tcp dport {{ {tcp_ports} }} counter drop"));
    rules.push(format!("udp dport {replication} counter drop"));
    let _ = writeln!(
        out,
        "\tchain input {{\n\t\ttype filter hook input priority filter; policy accept;"
    );
    for rule in rules {
        let _ = writeln!(out, "\t\t{rule}");
    }
    let _ = writeln!(out, "\t}}\n}}");
    Ok(out)
}

fn write_set(out: &mut String, name: &str, addr_type: &str, interval: bool, elements: &[String]) {
    let _ = writeln!(out, "\tset {name} {{\n\t\ttype {addr_type}");
    if interval {
        // Overlapping client networks merge instead of being refused.
        let _ = writeln!(out, "\t\tflags interval\n\t\tauto-merge");
    }
    let _ = writeln!(out, "\t\telements = {{ {} }}\n\t}}\n", elements.join(", "));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_nodes_reach_the_cluster_ports_and_the_rest_is_dropped() {
        let rules = render_nftables(
            &["10.0.0.3", "10.0.0.1", "10.0.0.2"],
            &[],
            &ClusterPorts::default(),
        )
        .unwrap();
        assert!(
            rules.contains("elements = { 10.0.0.1, 10.0.0.2, 10.0.0.3 }"),
            "{rules}"
        );
        assert!(
            rules
                .contains("ip saddr @cluster_nodes_v4 tcp dport { 3306, 4444, 4567, 4568 } accept")
        );
        assert!(rules.contains("ip saddr @cluster_nodes_v4 udp dport 4567 accept"));
        assert!(rules.contains("tcp dport { 3306, 4444, 4567, 4568 } counter drop"));
        assert!(rules.contains("policy accept;"));
        // Nothing broader: every accept names the nodes' set or loopback, no client set
        // without clients.
        for line in rules.lines().filter(|l| l.trim_end().ends_with("accept")) {
            assert!(
                line.contains("saddr @cluster_nodes_v4") || line.trim() == r#"iif "lo" accept"#,
                "{line}"
            );
        }
        assert!(!rules.contains("mariadb_clients") && !rules.contains("ip6"));
    }

    #[test]
    fn clients_reach_mariadb_only_and_ipv6_nodes_get_their_own_set() {
        let rules = render_nftables(
            &["10.0.0.1", "fd00::2"],
            &["192.168.7.0/24", "192.168.7.128/25"],
            &ClusterPorts::default(),
        )
        .unwrap();
        assert!(rules.contains("ip saddr @mariadb_clients_v4 tcp dport 3306 accept"));
        assert!(rules.contains("elements = { 192.168.7.0/24, 192.168.7.128/25 }"));
        assert!(rules.contains("ip6 saddr @cluster_nodes_v6 tcp dport"));
        assert!(rules.contains("elements = { fd00::2 }"));
    }

    #[test]
    fn bad_arguments_are_named() {
        let err = |nodes: &[&str], clients: &[&str]| {
            render_nftables(nodes, clients, &ClusterPorts::default())
                .unwrap_err()
                .to_string()
        };
        assert!(err(&["10.0.0.1"], &[]).contains("at least two --node"));
        assert!(err(&["10.0.0.1", "10.0.0.256"], &[]).contains("--node \"10.0.0.256\""));
        assert!(err(&["10.0.0.1", "10.0.0.1"], &[]).contains("--node 10.0.0.1 is given twice"));
        assert!(err(&["10.0.0.1", "db2"], &[]).contains("--node \"db2\""));
        assert!(err(&["10.0.0.1", "10.0.0.2"], &["10.0.0.0/33"]).contains("--client"));
        let same = ClusterPorts {
            ist: 4444,
            ..ClusterPorts::default()
        };
        let e = render_nftables(&["10.0.0.1", "10.0.0.2"], &[], &same).unwrap_err();
        assert_eq!(e.to_string(), "--ist-port 4444 is also --sst-port");
    }

    #[test]
    fn the_ports_are_parameters() {
        let ports = ClusterPorts {
            mariadb: 13306,
            sst: 14444,
            replication: 14567,
            ist: 14568,
        };
        let rules = render_nftables(&["10.0.0.1", "10.0.0.2"], &["10.0.1.0/24"], &ports).unwrap();
        assert!(
            rules.contains("tcp dport { 13306, 14444, 14567, 14568 } accept"),
            "{rules}"
        );
        assert!(rules.contains("udp dport 14567 accept"));
        assert!(rules.contains("@mariadb_clients_v4 tcp dport 13306 accept"));
        assert!(rules.contains("udp dport 14567 counter drop"));
        for default in ["3306", "4444", "4567", "4568"] {
            assert!(
                !rules.contains(&format!(" {default}"))
                    && !rules.contains(&format!("{{ {default}")),
                "default port {default} left in:\n{rules}"
            );
        }
    }
}
