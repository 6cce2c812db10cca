//! The rooms one subscriber follows, with their subscription state.
//!
//! Most connections follow one room or a few, and every connection holds this set for its
//! whole life: a hash map's smallest table (4 buckets and their control bytes, ~150 B with
//! the allocator's overhead) cost more than the entries. So a handful of rooms sit in a
//! vector searched linearly; past [`SMALL`] the set becomes a hash map (a client may follow
//! up to `max_rooms_per_conn`, 1,024 by default, and must not make each subscribe a long
//! scan), and it turns back into a vector once it has shrunk to [`BACK`] (the gap between
//! the two keeps a client hovering at the boundary from converting on every call).
//!
//! Invariant: a room appears at most once, whichever form the set has.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use crate::subscriber::SubState;

/// Most rooms kept in the vector form.
const SMALL: usize = 8;
/// Size at which a map turns back into a vector.
const BACK: usize = 4;

#[derive(Debug)]
pub(crate) enum RoomSet {
    Small(Vec<(Arc<str>, SubState)>),
    Large(FxHashMap<Arc<str>, SubState>),
}

impl Default for RoomSet {
    fn default() -> Self {
        RoomSet::Small(Vec::new())
    }
}

impl RoomSet {
    pub(crate) fn len(&self) -> usize {
        match self {
            RoomSet::Small(v) => v.len(),
            RoomSet::Large(m) => m.len(),
        }
    }

    pub(crate) fn contains(&self, room: &str) -> bool {
        self.get(room).is_some()
    }

    pub(crate) fn get(&self, room: &str) -> Option<&SubState> {
        match self {
            RoomSet::Small(v) => v.iter().find(|(n, _)| &**n == room).map(|(_, s)| s),
            RoomSet::Large(m) => m.get(room),
        }
    }

    /// Sets `room`'s state, adding the room if it is not in the set.
    pub(crate) fn insert(&mut self, room: Arc<str>, state: SubState) {
        match self {
            RoomSet::Small(v) => {
                if let Some(e) = v.iter_mut().find(|(n, _)| *n == room) {
                    e.1 = state;
                } else if v.len() < SMALL {
                    // Grow one entry at a time (a `Vec` would jump to 4): most sets hold one.
                    v.reserve_exact(1);
                    v.push((room, state));
                } else {
                    let mut m: FxHashMap<_, _> = std::mem::take(v).into_iter().collect();
                    m.insert(room, state);
                    *self = RoomSet::Large(m);
                }
            }
            RoomSet::Large(m) => {
                m.insert(room, state);
            }
        }
    }

    /// Removes `room`, returning its name and state if it was in the set.
    pub(crate) fn remove(&mut self, room: &str) -> Option<(Arc<str>, SubState)> {
        match self {
            RoomSet::Small(v) => {
                let i = v.iter().position(|(n, _)| &**n == room)?;
                let e = v.swap_remove(i);
                if v.is_empty() {
                    *v = Vec::new(); // an idle connection keeps no storage
                }
                Some(e)
            }
            RoomSet::Large(m) => {
                let e = m.remove_entry(room)?;
                if m.len() <= BACK {
                    *self = RoomSet::Small(std::mem::take(m).into_iter().collect());
                }
                Some(e)
            }
        }
    }

    /// The names of every room in the set.
    pub(crate) fn names(&self) -> Vec<Arc<str>> {
        match self {
            RoomSet::Small(v) => v.iter().map(|(n, _)| n.clone()).collect(),
            RoomSet::Large(m) => m.keys().cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(i: usize) -> Arc<str> {
        Arc::from(format!("room:{i}"))
    }

    #[test]
    fn grows_into_a_map_and_shrinks_back_keeping_every_entry() {
        let mut s = RoomSet::default();
        for i in 0..20 {
            s.insert(name(i), SubState::Pending(i as u64));
            assert_eq!(s.len(), i + 1);
            assert_eq!(matches!(s, RoomSet::Large(_)), i + 1 > SMALL);
        }
        s.insert(name(3), SubState::Live);
        assert_eq!((s.len(), s.get("room:3")), (20, Some(&SubState::Live)));
        for i in (0..20).rev() {
            assert_eq!(s.remove(&format!("room:{i}")).map(|(n, _)| n), Some(name(i)));
            assert!(!s.contains(&format!("room:{i}")));
            assert_eq!(s.len(), i);
            for j in 0..i {
                assert!(s.contains(&format!("room:{j}")), "lost room {j} at {i}");
            }
        }
        assert!(matches!(&s, RoomSet::Small(v) if v.capacity() == 0), "empty again, no storage");
        assert_eq!(s.remove("room:0"), None);
    }

    #[test]
    fn small_form_replaces_instead_of_duplicating() {
        let mut s = RoomSet::default();
        s.insert(name(1), SubState::Pending(7));
        s.insert(name(1), SubState::Live);
        assert_eq!(s.len(), 1);
        assert_eq!(s.names(), vec![name(1)]);
        assert_eq!(s.get("room:1"), Some(&SubState::Live));
    }
}
