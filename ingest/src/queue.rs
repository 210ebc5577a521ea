//! The bounded hand-off between each camera's decoder thread and the shared producer task.
//!
//! One queue per camera, so a camera that floods cannot push out another camera's frames. What happens when
//! a queue is full depends on the source: a live camera cannot be paused, so the oldest queued frame is
//! dropped (and counted: the gap also shows in `seq`); a file can, so its decoder waits for space.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// What a full queue does with one more frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Drop the oldest queued frame (live sources).
    DropOldest,
    /// Wait for space (files, folders).
    Wait,
}

/// The producer went away (a fatal Kafka error): decoders should stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// One camera's queue.
pub struct CameraQueue<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    /// A camera's policy can change once its source is open (an HTTP URL turns out to be a file or live).
    drop_oldest: AtomicBool,
    space: Condvar,
    /// Wakes the consumer; shared by all queues of one [`Queues`].
    ready: Arc<Notify>,
    consumer_gone: Arc<AtomicBool>,
    /// Set when the camera's decoder has finished: the consumer ends once all queues are finished and empty.
    finished: AtomicBool,
}

impl<T> CameraQueue<T> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // A panic while holding this lock cannot leave the deque inconsistent: keep going with its contents.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item`. Returns the frame dropped to make room, if any. Blocks (policy `Wait`) while full.
    pub fn push(&self, item: T) -> Result<Option<T>, Closed> {
        let mut items = self.lock();
        let mut dropped = None;
        while items.len() >= self.capacity {
            if self.consumer_gone.load(Ordering::Acquire) {
                return Err(Closed);
            }
            match self.policy() {
                Full::DropOldest => {
                    dropped = items.pop_front();
                }
                Full::Wait => {
                    // Timed, so a consumer that vanished without a notification is still noticed.
                    items =
                        self.space.wait_timeout(items, Duration::from_millis(100)).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
        }
        if self.consumer_gone.load(Ordering::Acquire) {
            return Err(Closed);
        }
        items.push_back(item);
        drop(items);
        self.ready.notify_one();
        Ok(dropped)
    }

    pub fn policy(&self) -> Full {
        if self.drop_oldest.load(Ordering::Relaxed) { Full::DropOldest } else { Full::Wait }
    }

    pub fn set_policy(&self, policy: Full) {
        self.drop_oldest.store(policy == Full::DropOldest, Ordering::Relaxed);
    }

    /// Marks the camera's decoding as over; frames already queued are still delivered.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
        self.ready.notify_one();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pop(&self) -> Option<T> {
        let item = self.lock().pop_front();
        if item.is_some() {
            self.space.notify_one();
        }
        item
    }
}

/// All cameras' queues plus the consumer side, which takes frames round-robin.
pub struct Queues<T> {
    queues: Vec<Arc<CameraQueue<T>>>,
    ready: Arc<Notify>,
    consumer_gone: Arc<AtomicBool>,
    next: usize,
}

impl<T> Default for Queues<T> {
    fn default() -> Self {
        Queues { queues: Vec::new(), ready: Arc::new(Notify::new()), consumer_gone: Arc::default(), next: 0 }
    }
}

impl<T> Queues<T> {
    /// Adds a camera's queue; all queues must be added before the consumer starts.
    pub fn add(&mut self, capacity: usize, policy: Full) -> Arc<CameraQueue<T>> {
        let q = Arc::new(CameraQueue {
            items: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity: capacity.max(1),
            drop_oldest: AtomicBool::new(policy == Full::DropOldest),
            space: Condvar::new(),
            ready: self.ready.clone(),
            consumer_gone: self.consumer_gone.clone(),
            finished: AtomicBool::new(false),
        });
        self.queues.push(q.clone());
        q
    }

    /// The next frame, taking one camera after another so that one busy camera cannot starve the rest.
    /// `None` once every camera has finished and every queue is empty.
    pub async fn next(&mut self) -> Option<T> {
        loop {
            let n = self.queues.len();
            // Read "finished" before looking at the items: a camera that finishes after this load is seen
            // on the next round, and one that finished before has already queued its last frame.
            let all_finished = self.queues.iter().all(|q| q.finished.load(Ordering::Acquire));
            for i in 0..n {
                let q = &self.queues[(self.next + i) % n];
                if let Some(item) = q.pop() {
                    self.next = (self.next + i + 1) % n;
                    return Some(item);
                }
            }
            if all_finished {
                return None;
            }
            self.ready.notified().await;
        }
    }

    /// Tells the decoders that nothing will be consumed any more.
    pub fn close(&self) {
        self.consumer_gone.store(true, Ordering::Release);
        for q in &self.queues {
            q.space.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_live_queue_drops_the_oldest_frame_and_counts_it() {
        let mut qs = Queues::default();
        let q = qs.add(3, Full::DropOldest);
        for i in 0..3 {
            assert_eq!(q.push(i), Ok(None));
        }
        assert_eq!(q.push(3), Ok(Some(0)));
        assert_eq!(q.push(4), Ok(Some(1)));
        q.finish();
        let mut got = Vec::new();
        while let Some(i) = qs.next().await {
            got.push(i);
        }
        assert_eq!(got, vec![2, 3, 4], "the newest frames survive, in order");
    }

    #[tokio::test]
    async fn a_full_file_queue_waits_for_space_and_loses_nothing() {
        let mut qs = Queues::default();
        let q = qs.add(2, Full::Wait);
        let producer = std::thread::spawn(move || {
            for i in 0..50 {
                assert_eq!(q.push(i), Ok(None), "nothing is dropped");
            }
            q.finish();
        });
        let mut got = Vec::new();
        while let Some(i) = qs.next().await {
            got.push(i);
            tokio::task::yield_now().await;
        }
        assert_eq!(got, (0..50).collect::<Vec<_>>());
        producer.join().unwrap();
    }

    #[tokio::test]
    async fn cameras_are_served_in_turn() {
        let mut qs = Queues::default();
        let a = qs.add(8, Full::Wait);
        let b = qs.add(8, Full::Wait);
        for i in 0..4 {
            a.push(("a", i)).unwrap();
        }
        b.push(("b", 0)).unwrap();
        a.finish();
        b.finish();
        let mut order = Vec::new();
        while let Some(x) = qs.next().await {
            order.push(x);
        }
        assert_eq!(order[..2], [("a", 0), ("b", 0)], "b is not starved behind a: {order:?}");
        assert_eq!(order.len(), 5);
    }

    /// Whether a thread of this process is asleep in the kernel on a futex word inside `addr..addr + len`
    /// (the first argument of the system call it is blocked in, from Linux's `/proc/self/task/*/syscall`).
    /// std's `Condvar` is a futex word within itself, so this tells a thread parked on a condvar from one
    /// still on its way there (or blocked on the mutex, a different word).
    fn a_thread_sleeps_on(addr: usize, len: usize) -> bool {
        let tasks = std::fs::read_dir("/proc/self/task").expect("/proc/self/task (these tests need Linux)");
        tasks.flatten().any(|task| {
            let Ok(line) = std::fs::read_to_string(task.path().join("syscall")) else { return false };
            let mut fields = line.split_whitespace();
            let (Some(nr), Some(arg)) = (fields.next(), fields.next()) else { return false };
            nr != "running"
                && nr != "-1"
                && usize::from_str_radix(arg.trim_start_matches("0x"), 16)
                    .is_ok_and(|a| (addr..addr + len).contains(&a))
        })
    }

    #[test]
    fn a_waiting_decoder_is_released_when_the_producer_goes_away() {
        let mut qs = Queues::default();
        let q = qs.add(1, Full::Wait);
        q.push(1).unwrap();
        let waiter = {
            let q = q.clone();
            std::thread::spawn(move || q.push(2))
        };
        // Seen, not assumed: the decoder is asleep on the full queue's `space` condvar before the producer
        // goes away, so the release below is the wake-up of a waiting decoder, not a push that came late.
        let space = std::ptr::from_ref(&q.space) as usize;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !a_thread_sleeps_on(space, std::mem::size_of::<Condvar>()) {
            assert!(!waiter.is_finished(), "push returned instead of waiting for space");
            assert!(std::time::Instant::now() < deadline, "the decoder never waited on the full queue");
            std::thread::yield_now();
        }
        qs.close();
        assert_eq!(waiter.join().unwrap(), Err(Closed));
    }
}
