//! Presence across nodes (DESIGN §4): every node tells the others, once a second, its own
//! members of each presence room it has subscribers in; each node's room owner merges what
//! it hears (`Shard::presence_apply`) into the room's presence, so counts, member lists and
//! `presence_diff`s are cluster-wide.
//!
//! Why full states on a timer rather than join/leave events: NATS core delivery is at most
//! once, so a lost event would skew counts for good, and a node that dies never says
//! goodbye. A full state replaces the previous one (a lost message is repaired a second
//! later), and a node not heard from for a few seconds is dropped by every owner
//! (`REMOTE_PRESENCE_TTL`), so a dead node's members leave by themselves.
//!
//! Subjects: `sc.pres.<room>`, payload `{"node":"<node-id>#<incarnation>","members":[["alice",2],..]}`.
//! The incarnation (random per process) keeps a restarted node with the same `--node-id`
//! from being mistaken for its previous life. Nodes subscribe to a room's subject only while
//! they have interest in it (`watch.rs`).
//!
//! Bounds: this node's table holds the presence rooms with local subscribers (its changes
//! arrive on an unbounded channel whose length is bounded by the subscription events the
//! shards produce between two turns of this task); one state message lists at most
//! [`MAX_MEMBERS`] members.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

use super::link::Link;
use super::Inbound;

/// How often a node sends its states.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// Most members one state message lists (a room above the presence member limit reports no
/// names anyway; this bounds the message).
pub const MAX_MEMBERS: usize = 10_000;

/// One node's members of one room.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub node: String,
    pub members: Vec<(Box<str>, u32)>,
}

/// A change of this node's presence: (room, member, joined).
pub type Change = (Arc<str>, Box<str>, bool);

/// `sc.pres.<room>`.
pub fn subject(room: &str) -> String {
    format!("sc.pres.{}", super::names::token(room))
}

/// Sends this node's states every [`INTERVAL`] until the shards' channel closes.
pub(super) async fn run(link: Rc<Link>, node: String, mut changes: mpsc::UnboundedReceiver<Change>) {
    let mut rooms: HashMap<Arc<str>, HashMap<Box<str>, u32>> = HashMap::new();
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tokio::select! {
            c = changes.recv() => match c {
                Some((room, member, joined)) => apply(&mut rooms, room, member, joined),
                None => return,
            },
            _ = tick.tick() => {
                for (room, members) in &rooms {
                    let state = State {
                        node: node.clone(),
                        members: members.iter().take(MAX_MEMBERS).map(|(m, &n)| (m.clone(), n)).collect(),
                    };
                    let Ok(body) = serde_json::to_vec(&state) else { continue };
                    if let Err(e) = link.client.publish(subject(room), body.into()).await {
                        tracing::debug!(room = &**room, "presence state not sent: {e}");
                    }
                }
                // A room whose last member left was just announced empty: forget it.
                rooms.retain(|_, m| !m.is_empty());
            }
        }
    }
}

fn apply(
    rooms: &mut HashMap<Arc<str>, HashMap<Box<str>, u32>>,
    room: Arc<str>,
    member: Box<str>,
    joined: bool,
) {
    let members = rooms.entry(room).or_default();
    if joined {
        *members.entry(member).or_default() += 1;
    } else if let Some(n) = members.get_mut(&member) {
        *n -= 1;
        if *n == 0 {
            members.remove(&member);
        }
    }
}

/// A state another node sent for `room`: to the room's owner shard here (in arrival order).
pub(super) async fn forward(link: &Link, room: &Arc<str>, own: &str, payload: &[u8]) {
    let Ok(state) = serde_json::from_slice::<State>(payload) else {
        tracing::debug!(room = &**room, "a malformed presence state was ignored");
        return;
    };
    if state.node == own || state.members.len() > MAX_MEMBERS {
        return;
    }
    let owner = shardcast_engine::owner_of(room, link.cfg.shards);
    let msg = Inbound::Presence { room: room.clone(), node: state.node.into(), members: state.members };
    let _ = link.to_shards[owner].send(msg).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_changes_count_subscriptions_per_member() {
        let mut rooms = HashMap::new();
        let r: Arc<str> = "chat:a".into();
        apply(&mut rooms, r.clone(), "alice".into(), true);
        apply(&mut rooms, r.clone(), "alice".into(), true);
        apply(&mut rooms, r.clone(), "bob".into(), true);
        apply(&mut rooms, r.clone(), "alice".into(), false);
        apply(&mut rooms, r.clone(), "bob".into(), false);
        apply(&mut rooms, r.clone(), "carol".into(), false); // unknown: ignored
        assert_eq!(rooms[&r], HashMap::from([("alice".into(), 1)]));
    }

    #[test]
    fn the_state_payload_is_stable() {
        let s = State { node: "n1#abc".into(), members: vec![("a\"b".into(), 2)] };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"node":"n1#abc","members":[["a\"b",2]]}"#);
        assert_eq!(serde_json::from_str::<State>(&text).unwrap(), s);
        assert_eq!(subject("chat:lobby.1"), "sc.pres.chat:lobby~1");
    }
}
