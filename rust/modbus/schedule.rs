//! Wall-clock scheduling and exponential backoff.
//!
//! Poll cycles are aligned to the wall clock: a device with a 1 s period is
//! read at every whole second (`t % period == offset`), so values of many
//! devices, and of many gateways, line up. Devices on one RTU bus get
//! different offsets (staggered) so that they do not all queue at once.

use std::time::Duration;

/// The first tick strictly after `now_ms` with `(tick - offset_ms) % period_ms == 0`.
///
/// `period_ms` must be positive; `offset_ms` is taken modulo the period.
pub fn next_tick(now_ms: i64, period_ms: i64, offset_ms: i64) -> i64 {
    let period = period_ms.max(1);
    let offset = offset_ms.rem_euclid(period);
    let since = (now_ms - offset).rem_euclid(period);
    now_ms - since + period
}

/// Offset of the `index`-th of `count` devices sharing a bus, within `period_ms`.
pub fn stagger(index: usize, count: usize, period_ms: i64) -> i64 {
    if count <= 1 {
        return 0;
    }
    period_ms.max(1) * index as i64 / count as i64
}

/// How many ticks a cycle missed when it ended `late` after its own tick
/// (waiting for the link, then running): each whole period is one tick skipped.
/// Measured on the monotonic clock, so a wall-clock step is not an overrun.
pub fn missed_ticks(late: Duration, period_ms: i64) -> u64 {
    let period = u128::try_from(period_ms.max(1)).unwrap_or(1);
    u64::try_from(late.as_millis() / period).unwrap_or(u64::MAX)
}

/// Exponential backoff: `base`, `2 × base`, `4 × base`... capped at `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            failures: 0,
        }
    }

    /// The delay before the next attempt, after one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.failures.min(20);
        self.failures = self.failures.saturating_add(1);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A success: the next failure starts again at `base`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_aligned_to_the_period() {
        assert_eq!(next_tick(1_700_000_000_123, 1000, 0), 1_700_000_001_000);
        assert_eq!(next_tick(1_700_000_001_000, 1000, 0), 1_700_000_002_000);
        assert_eq!(next_tick(1_700_000_000_999, 1000, 0), 1_700_000_001_000);
        assert_eq!(next_tick(12_345, 250, 0), 12_500);
        for now in [0, 1, 999, 1000, 123_456_789] {
            let tick = next_tick(now, 300, 0);
            assert_eq!(tick % 300, 0);
            assert!(tick > now && tick - now <= 300);
        }
    }

    #[test]
    fn offsets_shift_the_ticks() {
        assert_eq!(next_tick(1_000, 1000, 250), 1_250);
        assert_eq!(next_tick(1_250, 1000, 250), 2_250);
        assert_eq!(
            next_tick(1_000, 1000, 1250),
            1_250,
            "offset is modulo the period"
        );
    }

    #[test]
    fn devices_on_a_bus_are_spread_over_the_period() {
        let offsets: Vec<i64> = (0..4).map(|i| stagger(i, 4, 1000)).collect();
        assert_eq!(offsets, vec![0, 250, 500, 750]);
        assert_eq!(stagger(0, 1, 1000), 0);
    }

    #[test]
    fn overruns_count_the_skipped_ticks() {
        let ms = Duration::from_millis;
        assert_eq!(missed_ticks(ms(999), 1000), 0);
        assert_eq!(missed_ticks(ms(1000), 1000), 1);
        assert_eq!(missed_ticks(ms(3500), 1000), 3);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<u128> = (0..6).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff.failures(), 6);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(100));
        // Very many failures never overflow.
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }
}
