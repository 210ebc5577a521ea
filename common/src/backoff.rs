//! The one retry policy of every framewire binary: exponential delays with jitter, so a fleet of cameras
//! behind one failed switch, or detect and store replicas after a broker or database outage, do not retry in
//! lock-step, and capped so whatever comes back is picked up within `max`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// `seed` varies the jitter between cameras (e.g. a hash of the camera id).
    pub fn new(min: Duration, max: Duration, seed: u64) -> Self {
        let max = max.max(min);
        // splitmix64 spreads small or similar seeds (hashes of "cam1", "cam2") over the whole state.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Backoff { min, max, attempt: 0, rng: (z ^ (z >> 31)) | 1 }
    }

    /// Jitter seeded from this process and a per-process counter: replicas and the loops within one differ.
    pub fn jittered(min: Duration, max: Duration) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        // The counter spread over all 64 bits: XORed in as it is, loop n at time t and loop n+1 at t±1 µs would
        // get the same seed, and retry in lock-step.
        let seed = u64::from(std::process::id()).rotate_left(32)
            ^ crate::time::now_us() as u64
            ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Self::new(min, max, seed)
    }

    /// The delay before the next attempt: uniformly random in [ceiling/2, ceiling], where the ceiling doubles
    /// from `min` per failed attempt up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.min.saturating_mul(1u32 << self.attempt.min(20)).min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        half + half.mul_f64(self.random_unit())
    }

    /// Attempts since the last success.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// A connection worked: start again from `min`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn random_unit(&mut self) -> f64 {
        // xorshift64: jitter needs spread, not cryptographic quality.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_stay_under_the_cap() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(8));
        let mut b = Backoff::new(min, max, 42);
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = min.saturating_mul(1 << i).min(max);
            assert!(*d >= ceiling / 2 && *d <= ceiling, "attempt {i}: {d:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
        }
        assert!(delays[9] >= max / 2);
        b.reset();
        assert!(b.next_delay() <= min);
    }

    #[test]
    fn jitter_differs_between_cameras() {
        let d = |seed| Backoff::new(Duration::from_secs(1), Duration::from_secs(60), seed).next_delay();
        let delays: std::collections::HashSet<Duration> = (1..20).map(d).collect();
        assert!(delays.len() > 10, "jitter does not spread: {delays:?}");
    }

    #[test]
    fn loops_of_one_process_do_not_share_their_jitter() {
        let d = || Backoff::jittered(Duration::from_secs(1), Duration::from_secs(60)).next_delay();
        let delays: std::collections::HashSet<Duration> = (0..20).map(|_| d()).collect();
        assert!(delays.len() > 10, "jitter does not spread: {delays:?}");
    }
}
