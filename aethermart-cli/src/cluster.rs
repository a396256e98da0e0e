//! `aethermart cluster …`: node states and network rules of a MariaDB cluster.

use crate::opt::ClusterCommand;
use crate::output::print_json;
use crate::{EXIT_OK, EXIT_PROBLEM};
use aethermart_core::Error;
use aethermart_core::cluster::{self, NodeState, NodeStatus};
use aethermart_core::config::MariaDbConfig;

pub async fn run(command: ClusterCommand) -> Result<u8, Error> {
    match command {
        ClusterCommand::Status { json } => {
            let config = MariaDbConfig::from_env()?;
            let nodes = cluster::probe_nodes(&config).await;
            if json {
                print_json(&nodes);
            } else {
                print_table(&nodes);
            }
            let writer = nodes.iter().any(|n| n.takes_writes().is_ok());
            Ok(if writer && nodes.iter().all(NodeStatus::healthy) {
                EXIT_OK
            } else {
                EXIT_PROBLEM
            })
        }
        ClusterCommand::Firewall {
            nodes,
            clients,
            mariadb_port,
            sst_port,
            replication_port,
            ist_port,
        } => {
            let nodes: Vec<&str> = nodes.iter().map(String::as_str).collect();
            let clients: Vec<&str> = clients.iter().map(String::as_str).collect();
            let ports = cluster::ClusterPorts {
                mariadb: mariadb_port,
                sst: sst_port,
                replication: replication_port,
                ist: ist_port,
            };
            print!("{}", cluster::render_nftables(&nodes, &clients, &ports)?);
            Ok(EXIT_OK)
        }
    }
}

fn print_table(nodes: &[NodeStatus]) {
    println!(
        "{:<22} {:<9} {:<18} {:>4} {:<6} {:<34} {:>6}  position",
        "node", "role", "state", "size", "writes", "replication", "lag s"
    );
    for node in nodes {
        let info = match &node.state {
            NodeState::Up(info) => info,
            NodeState::Down { error } => {
                println!("{:<22} {:<9} {error}", node.endpoint, "down");
                continue;
            }
        };
        let (state, size) = match &info.galera {
            Some(g) => (
                format!("{}/{}", g.state, g.cluster_status),
                g.cluster_size.to_string(),
            ),
            None => (
                if info.read_only {
                    "read_only"
                } else {
                    "read-write"
                }
                .to_owned(),
                "-".to_owned(),
            ),
        };
        let (replication, lag) = match (&info.replication, &info.replication_unknown) {
            (Some(r), _) => (
                format!(
                    "io {} sql {} from {}",
                    r.io_running, r.sql_running, r.source
                ),
                r.lag_seconds
                    .map_or_else(|| "-".to_owned(), |l| l.to_string()),
            ),
            (None, Some(_)) => ("unknown (needs SLAVE MONITOR)".to_owned(), "-".to_owned()),
            (None, None) => ("-".to_owned(), "-".to_owned()),
        };
        let writes = if info.takes_writes().is_ok() {
            "yes"
        } else {
            "no"
        };
        // Galera's own sequence number, and the GTID position when there is a binary log.
        let position = match &info.galera {
            Some(g) => format!("seqno {} {}", g.last_committed, info.gtid_position),
            None => format!("gtid {}", info.gtid_position),
        };
        println!(
            "{:<22} {:<9} {:<18} {:>4} {:<6} {:<34} {:>6}  {}",
            node.endpoint,
            info.role,
            state,
            size,
            writes,
            replication,
            lag,
            position.trim_end()
        );
        if let Some(error) = info
            .replication
            .as_ref()
            .and_then(|r| r.last_error.as_ref())
        {
            println!("{:<22} replication error: {error}", "");
        }
    }
}
