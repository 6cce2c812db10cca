//! The shard side of the link: each shard runs one task that takes the messages the link
//! receives for rooms this shard owns and records them in the engine
//! ([`shardcast_engine::Shard::apply`]), which fans them out to every local follower on
//! every shard of this node — the same path and the same once-encoded frame as a local
//! publish, with the cluster's `seq`.

use std::rc::Rc;
use tokio::sync::mpsc;

use super::Inbound;
use crate::state::ShardCtx;

/// Runs until the link drops this shard's queue (process exit).
pub async fn run(ctx: Rc<ShardCtx>, mut inbound: mpsc::Receiver<Inbound>) {
    while let Some(item) = inbound.recv().await {
        match item {
            Inbound::Msg { room, epoch, seq, data, age } => {
                let key = ctx.shared.key_of(&room, &data);
                if let Err(e) = ctx.shard.apply(&room, epoch, seq, data, key, age).await {
                    tracing::warn!(room = &*room, seq, "a cluster message was not recorded: {e}");
                }
            }
            Inbound::Presence { room, node, members } => ctx.shard.presence_apply(&room, &node, members),
            Inbound::Sync { room, epoch, snapshot, msgs, done } => {
                let mut held = true;
                for m in snapshot {
                    let Some(key) = m.key else { continue };
                    if ctx.shard.seed(&room, epoch, m.seq, m.data, key, m.age).is_err() {
                        held = false;
                        break;
                    }
                }
                for m in msgs.into_iter().filter(|_| held) {
                    let key = ctx.shared.key_of(&room, &m.data);
                    if ctx.shard.apply(&room, epoch, m.seq, m.data, key, m.age).await.is_err() {
                        held = false;
                        break;
                    }
                }
                let _ = done.send(held);
            }
        }
        // A burst from the broker must not hold the shard (its connections come first).
        glommio::yield_if_needed().await;
    }
}
