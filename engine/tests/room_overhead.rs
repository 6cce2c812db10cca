//! Measures what a room costs in memory, with a counting global allocator (this test binary
//! only): bytes per empty room, and per room holding one 1 KiB message, beyond what the
//! retained-bytes budget counts. Issue 7 asks for at most a few hundred bytes of overhead
//! per room; this test keeps it so, and prints the figures (`--nocapture`).
//!
//! Two figures per case: the bytes the code asked for, and the heap it really occupies
//! (glibc's usable size of each block plus its 8-byte header). Everything runs in one test
//! function, so no other test thread allocates while it measures.

use bytes::Bytes;
use shardcast_engine::epoch::EpochRng;
use shardcast_engine::room::Resume;
use shardcast_engine::rooms::Registry;
use shardcast_engine::stats::ShardStats;
use shardcast_engine::{Message, Namespaces, Policy, RoomLimits, RoomSettings};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

struct Counting;

static ASKED: AtomicIsize = AtomicIsize::new(0);
static HEAP: AtomicIsize = AtomicIsize::new(0);

/// The heap a block really occupies: its usable size plus glibc's chunk header.
fn footprint(ptr: *mut u8) -> isize {
    // SAFETY: `ptr` is a live block from the system allocator.
    (unsafe { libc::malloc_usable_size(ptr.cast()) } + 8) as isize
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            ASKED.fetch_add(l.size() as isize, Relaxed);
            HEAP.fetch_add(footprint(p), Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        ASKED.fetch_sub(l.size() as isize, Relaxed);
        HEAP.fetch_sub(footprint(p), Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let before = footprint(p);
        // SAFETY: same contract as the caller's.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            ASKED.fetch_add(new as isize - l.size() as isize, Relaxed);
            HEAP.fetch_add(footprint(q) - before, Relaxed);
        }
        q
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn now() -> (isize, isize) {
    (ASKED.load(Relaxed), HEAP.load(Relaxed))
}

const N: usize = 20_000;

fn registry() -> Registry {
    Registry::new(
        Namespaces::new(RoomSettings::default()),
        RoomLimits::default(),
        EpochRng::with_seed(3),
        Arc::new(ShardStats::default()),
    )
}

/// Room names as the server sees them, 16 bytes each.
fn names() -> Vec<String> {
    (0..N).map(|i| format!("fleet:veh{i:07}")).collect()
}

#[test]
fn per_room_overhead_is_a_few_hundred_bytes() {
    let t = Instant::now();
    let names = names();
    let kib = Bytes::from(format!("\"{}\"", "x".repeat(1022)));

    // Empty rooms: created by a subscribe (one subscriber shard), no message.
    let mut reg = registry();
    let base = now();
    for n in &names {
        reg.subscribe(n, 1, Resume::default(), t).unwrap();
    }
    let (asked, heap) = (now().0 - base.0, now().1 - base.1);
    let empty = (asked as usize / N, heap as usize / N);
    drop(reg);

    // The messages alone: what a 1 KiB message itself holds (struct + envelope frame).
    let room: Arc<str> = Arc::from("fleet:veh0000000");
    let base = now();
    let msgs: Vec<Arc<Message>> = (0..N)
        .map(|i| Arc::new(Message::new(room.clone(), i as u64 + 1, kib.clone(), None, Policy::Drop, t)))
        .collect();
    let message = ((now().1 - base.1) as usize - N * std::mem::size_of::<usize>()) / N;
    drop(msgs);

    // Rooms with one 1 KiB message each and no subscriber (the invented-rooms attack).
    let mut reg = registry();
    let base = now();
    for n in &names {
        reg.publish(n, kib.clone(), None, t).unwrap();
    }
    let full = (now().1 - base.1) as usize / N;
    let counted = reg.retained() / N;
    drop(reg);

    println!("empty room (subscribe-created, no message): {} B asked, {} B heap", empty.0, empty.1);
    println!("a 1 KiB message alone (struct + envelope frame): {message} B heap");
    println!(
        "room with one 1 KiB message: {full} B heap = message + {} B of room; the budget counts {counted} B \
         for that message (its room-per-URL frame too, built or not)",
        full - message
    );
    assert!(empty.1 <= 400, "an empty room costs {} B", empty.1);
    assert!(full - message <= 400, "a room beyond its message costs {} B", full - message);
    assert!(counted >= message, "the budget under-counts: {counted} B counted, {message} B real");
}
