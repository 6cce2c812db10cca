//! Several targets in one measurement: which node (server) each connection goes to.
//!
//! A shardcast cluster (`--nats`) serves one set of rooms from every node, so a publish on one
//! node reaches subscribers on all of them. Measuring that from one loadgen process keeps one
//! clock for send and receive times, so cross-node latency is exact. Nodes are numbered by
//! the order of their URLs (`--url A --url B ...`: A is node 0).
//!
//! Subscriber clients go round-robin over the subscribing nodes (all by default), publishers
//! round-robin over all nodes or all to one (`--publish-node K`). Choosing both separately is
//! what lets one measure "publishers on node 0, subscribers on nodes 1 and 2" (every delivery
//! crosses the broker) against "everything on node 0" (none does). Pure functions: the unit
//! tests below check the spread without sockets.

use anyhow::{bail, Result};

/// Where the publishers go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PublishOn {
    /// Round-robin over all nodes: publisher `i` on node `i % n`.
    #[default]
    Spread,
    /// Every publisher on node `K`.
    Node(usize),
}

/// How connections are spread over `nodes` targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Number of targets (≥ 1).
    pub nodes: usize,
    pub publish: PublishOn,
    /// Nodes the subscriber clients go round-robin over; empty = all.
    pub subscribe: Vec<usize>,
}

impl Placement {
    /// Everything on one target (the single-server case).
    pub fn single() -> Placement {
        Placement { nodes: 1, publish: PublishOn::Spread, subscribe: Vec::new() }
    }

    /// Checks node numbers against `nodes`.
    pub fn new(nodes: usize, publish: PublishOn, subscribe: Vec<usize>) -> Result<Placement> {
        if nodes == 0 {
            bail!("no target given");
        }
        if let PublishOn::Node(k) = publish {
            if k >= nodes {
                bail!("--publish-node {k}: {}", numbered(nodes));
            }
        }
        if let Some(k) = subscribe.iter().find(|&&k| k >= nodes) {
            bail!("--subscribe-nodes {k}: {}", numbered(nodes));
        }
        let mut seen = subscribe.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != subscribe.len() {
            bail!("--subscribe-nodes names a node twice");
        }
        Ok(Placement { nodes, publish, subscribe })
    }

    /// Node of publisher number `i` (in plan order).
    pub fn publisher(&self, i: usize) -> usize {
        match self.publish {
            PublishOn::Spread => i % self.nodes,
            PublishOn::Node(k) => k,
        }
    }

    /// Node of subscriber client number `i` (in plan order).
    pub fn subscriber(&self, i: usize) -> usize {
        if self.subscribe.is_empty() {
            i % self.nodes
        } else {
            self.subscribe[i % self.subscribe.len()]
        }
    }

    /// One line for reports: where publishers and subscribers went.
    pub fn describe(&self) -> String {
        let pubs = match self.publish {
            PublishOn::Spread if self.nodes > 1 => "round-robin over all nodes".to_string(),
            PublishOn::Spread => "node 0".to_string(),
            PublishOn::Node(k) => format!("node {k}"),
        };
        let subs = if self.subscribe.is_empty() {
            if self.nodes > 1 {
                "round-robin over all nodes".to_string()
            } else {
                "node 0".to_string()
            }
        } else {
            let list: Vec<String> = self.subscribe.iter().map(|k| k.to_string()).collect();
            format!("round-robin over node(s) {}", list.join(", "))
        };
        format!("publishers on {pubs}; subscribers {subs}")
    }
}

/// How the targets are numbered, for errors: "1 target, node 0" / "3 targets, nodes 0..=2".
fn numbered(nodes: usize) -> String {
    match nodes {
        1 => "there is 1 target, node 0".to_string(),
        n => format!("there are {n} targets, nodes 0..={}", n - 1),
    }
}

/// Parses `--subscribe-nodes`: `1,2` or `1-2`.
pub fn parse_list(s: &str) -> Result<Vec<usize>> {
    let mut v = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) = (a.trim().parse()?, b.trim().parse()?);
                if a > b {
                    bail!("node range {part:?} runs backwards");
                }
                v.extend(a..=b);
            }
            None => v.push(part.parse()?),
        }
    }
    if v.is_empty() {
        bail!("empty node list {s:?}");
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(n: usize, f: impl Fn(usize) -> usize, items: usize) -> Vec<usize> {
        let mut c = vec![0; n];
        for i in 0..items {
            c[f(i)] += 1;
        }
        c
    }

    #[test]
    fn one_target_takes_everything() {
        let p = Placement::single();
        assert!((0..10).all(|i| p.publisher(i) == 0 && p.subscriber(i) == 0));
    }

    #[test]
    fn spread_is_round_robin_and_even() {
        let p = Placement::new(3, PublishOn::Spread, vec![]).unwrap();
        assert_eq!((0..6).map(|i| p.subscriber(i)).collect::<Vec<_>>(), [0, 1, 2, 0, 1, 2]);
        assert_eq!(counts(3, |i| p.subscriber(i), 600), [200, 200, 200]);
        assert_eq!(counts(3, |i| p.publisher(i), 500), [167, 167, 166]);
    }

    #[test]
    fn cross_node_keeps_publishers_off_the_subscribing_nodes() {
        let p = Placement::new(3, PublishOn::Node(0), vec![1, 2]).unwrap();
        assert_eq!(counts(3, |i| p.publisher(i), 500), [500, 0, 0]);
        assert_eq!(counts(3, |i| p.subscriber(i), 2000), [0, 1000, 1000]);
        assert_eq!(p.describe(), "publishers on node 0; subscribers round-robin over node(s) 1, 2");
    }

    #[test]
    fn same_node_in_a_cluster() {
        let p = Placement::new(3, PublishOn::Node(1), vec![1]).unwrap();
        assert!((0..10).all(|i| p.publisher(i) == 1 && p.subscriber(i) == 1));
    }

    #[test]
    fn node_numbers_are_checked() {
        assert!(Placement::new(0, PublishOn::Spread, vec![]).is_err());
        assert!(Placement::new(2, PublishOn::Node(2), vec![]).is_err());
        assert!(Placement::new(2, PublishOn::Spread, vec![0, 2]).is_err());
        assert!(Placement::new(3, PublishOn::Spread, vec![1, 1]).is_err());
    }

    #[test]
    fn node_lists() {
        assert_eq!(parse_list("1,2").unwrap(), [1, 2]);
        assert_eq!(parse_list("1-3").unwrap(), [1, 2, 3]);
        assert_eq!(parse_list("0, 2-3").unwrap(), [0, 2, 3]);
        assert!(parse_list("").is_err() && parse_list("3-1").is_err() && parse_list("x").is_err());
    }
}
