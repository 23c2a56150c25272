//! Sample ring buffers: bounded memory for the samples not yet handed over.
//!
//! A [`RingSet`] holds one fixed-capacity ring per measurement, allocated once
//! at creation. Samples are appended for many measurements per call (one
//! sampling instant) and drained as periodic [`Series`] for batch encoding.
//!
//! Overflow policy: a full ring drops its **oldest** sample to take the new
//! one, and counts it (`dropped`, and `dropped_undrained` when the dropped
//! sample had not been drained yet: that is data lost, and must be shown).

use crate::series::{Series, SeriesValues, NIL_INTEGER};
use crate::{Error, Result};

/// Whether a measurement's samples are floats or exact integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleKind {
    Float,
    Integer,
}

#[derive(Debug)]
struct Ring {
    kind: SampleKind,
    period_ms: i64,
    times: Box<[i64]>,
    /// f64 bits for a float ring, i64 for an integer ring.
    values: Box<[u64]>,
    /// Index of the oldest sample.
    head: usize,
    len: usize,
    /// Samples at the end not drained yet (always the newest ones).
    pending: usize,
}

impl Ring {
    #[inline(always)]
    fn slot(&self, k: usize) -> usize {
        // `k < capacity` always, so one subtraction replaces a division.
        let slot = self.head + k;
        if slot >= self.times.len() {
            slot - self.times.len()
        } else {
            slot
        }
    }

    fn last_time(&self) -> Option<i64> {
        (self.len > 0).then(|| self.times[self.slot(self.len - 1)])
    }

    fn push(&mut self, t_ms: i64, bits: u64) -> (bool, bool) {
        let cap = self.times.len();
        let mut dropped = false;
        let mut lost = false;
        if self.len == cap {
            // Drop the oldest; if it was still pending, it is lost data.
            dropped = true;
            if self.pending == cap {
                lost = true;
                self.pending -= 1;
            }
            self.head = (self.head + 1) % cap;
            self.len -= 1;
        }
        let slot = self.slot(self.len);
        self.times[slot] = t_ms;
        self.values[slot] = bits;
        self.len += 1;
        self.pending += 1;
        (dropped, lost)
    }

    /// The samples `k in from..to` (indices from the oldest) as periodic runs.
    fn runs(&self, measurement: u32, from: usize, to: usize, out: &mut Vec<Series>) {
        let mut k = from;
        while k < to {
            let t0 = self.times[self.slot(k)];
            let mut end = k + 1;
            while end < to && self.times[self.slot(end)] == t0 + (end - k) as i64 * self.period_ms {
                end += 1;
            }
            let values = match self.kind {
                SampleKind::Float => SeriesValues::Float(
                    (k..end)
                        .map(|j| f64::from_bits(self.values[self.slot(j)]))
                        .collect(),
                ),
                SampleKind::Integer => SeriesValues::Integer(
                    (k..end).map(|j| self.values[self.slot(j)] as i64).collect(),
                ),
            };
            out.push(Series {
                measurement,
                t0_ms: t0,
                dt_ms: self.period_ms,
                values,
            });
            k = end;
        }
    }

    /// Index (from the oldest) of the first sample at or after `t_ms`.
    fn index_of(&self, t_ms: i64) -> usize {
        let (mut lo, mut hi) = (0, self.len);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.times[self.slot(mid)] < t_ms {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Counters of a [`RingSet`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Samples currently held (drained or not).
    pub held: u64,
    /// Samples not drained yet.
    pub pending: u64,
    /// Samples dropped to make room, in all.
    pub dropped: u64,
    /// Of those, samples dropped before they were drained: lost data.
    pub dropped_undrained: u64,
}

/// One ring per measurement, each of the same fixed capacity.
#[derive(Debug)]
pub struct RingSet {
    rings: Vec<Ring>,
    dropped: u64,
    dropped_undrained: u64,
}

impl RingSet {
    /// `measurements[i]` is the kind and sampling period of measurement `i`.
    pub fn new(measurements: &[(SampleKind, i64)], capacity: usize) -> Result<RingSet> {
        if capacity == 0 {
            return Err(Error::Ring("capacity must be at least 1".into()));
        }
        if let Some(i) = measurements.iter().position(|&(_, p)| p <= 0) {
            return Err(Error::Ring(format!(
                "measurement {i}: period must be positive, not {} ms",
                measurements[i].1
            )));
        }
        let rings = measurements
            .iter()
            .map(|&(kind, period_ms)| Ring {
                kind,
                period_ms,
                times: vec![0; capacity].into_boxed_slice(),
                values: vec![0; capacity].into_boxed_slice(),
                head: 0,
                len: 0,
                pending: 0,
            })
            .collect();
        Ok(RingSet {
            rings,
            dropped: 0,
            dropped_undrained: 0,
        })
    }

    pub fn len(&self) -> usize {
        self.rings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rings.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.rings.first().map_or(0, |r| r.times.len())
    }

    /// Append one sampling instant `t_ms` for the measurements `indices`.
    ///
    /// Measurement `indices[k]` takes `floats[k]` (float ring) or `integers[k]`
    /// (integer ring), or nil when `valid[k]` is false. Checked whole before
    /// anything is written, so a bad call changes nothing.
    pub fn append(
        &mut self,
        t_ms: i64,
        indices: &[u32],
        floats: &[f64],
        integers: &[i64],
        valid: &[bool],
    ) -> Result<()> {
        let n = indices.len();
        if floats.len() != n || integers.len() != n || valid.len() != n {
            return Err(Error::Ring(format!(
                "{n} indices but {} floats, {} integers, {} validity flags",
                floats.len(),
                integers.len(),
                valid.len()
            )));
        }
        for &i in indices {
            let ring = self.rings.get(i as usize).ok_or_else(|| {
                Error::Ring(format!(
                    "measurement {i} out of range (0..{})",
                    self.rings.len()
                ))
            })?;
            if let Some(last) = ring.last_time() {
                if t_ms <= last {
                    return Err(Error::Ring(format!(
                        "measurement {i}: sample at {t_ms} ms is not after the last one at {last} ms"
                    )));
                }
            }
        }
        for k in 0..n {
            let ring = &mut self.rings[indices[k] as usize];
            let bits = match (ring.kind, valid[k]) {
                (SampleKind::Float, true) => floats[k].to_bits(),
                (SampleKind::Float, false) => f64::NAN.to_bits(),
                (SampleKind::Integer, true) => integers[k] as u64,
                (SampleKind::Integer, false) => NIL_INTEGER as u64,
            };
            let (dropped, lost) = ring.push(t_ms, bits);
            self.dropped += u64::from(dropped);
            self.dropped_undrained += u64::from(lost);
        }
        Ok(())
    }

    /// Hand over every pending sample taken before `until_ms` (all of them if
    /// `None`), oldest first, as periodic series; they stay readable but are
    /// no longer pending.
    pub fn drain(&mut self, until_ms: Option<i64>) -> Vec<Series> {
        let mut out = Vec::new();
        for (i, ring) in self.rings.iter_mut().enumerate() {
            let from = ring.len - ring.pending;
            let to = until_ms.map_or(ring.len, |t| ring.index_of(t).max(from));
            ring.runs(i as u32, from, to, &mut out);
            ring.pending -= to - from;
        }
        out
    }

    /// The samples held (drained or not) with instants in `[from_ms, to_ms)`,
    /// without changing what is pending.
    pub fn read(&self, from_ms: i64, to_ms: i64) -> Vec<Series> {
        let mut out = Vec::new();
        for (i, ring) in self.rings.iter().enumerate() {
            ring.runs(
                i as u32,
                ring.index_of(from_ms),
                ring.index_of(to_ms),
                &mut out,
            );
        }
        out
    }

    pub fn stats(&self) -> RingStats {
        RingStats {
            held: self.rings.iter().map(|r| r.len as u64).sum(),
            pending: self.rings.iter().map(|r| r.pending as u64).sum(),
            dropped: self.dropped,
            dropped_undrained: self.dropped_undrained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> RingSet {
        RingSet::new(&[(SampleKind::Float, 10), (SampleKind::Integer, 20)], 4).expect("valid")
    }

    #[test]
    fn append_and_drain_as_series() {
        let mut rings = set();
        for t in [0, 10, 20, 40] {
            rings
                .append(t, &[0], &[t as f64], &[0], &[t != 20])
                .expect("append");
        }
        rings
            .append(0, &[1], &[0.0], &[7], &[true])
            .expect("append");
        let series = rings.drain(None);
        // The gap 20 → 40 in a 10 ms ring starts a new run; 20 is nil.
        assert_eq!(series.len(), 3);
        assert_eq!(series[0].t0_ms, 0);
        match &series[0].values {
            SeriesValues::Float(v) => {
                assert_eq!(v[..2], [0.0, 10.0]);
                assert!(v[2].is_nan());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(series[1].t0_ms, 40);
        assert_eq!(series[2].values, SeriesValues::Integer(vec![7]));
        assert!(rings.drain(None).is_empty(), "nothing pending twice");
        assert_eq!(rings.stats().pending, 0);
        assert_eq!(rings.read(0, 100).len(), 3, "drained samples stay readable");
    }

    #[test]
    fn drain_until_leaves_the_rest_pending() {
        let mut rings = set();
        for t in [0, 10, 20] {
            rings
                .append(t, &[0], &[1.0], &[0], &[true])
                .expect("append");
        }
        let first = rings.drain(Some(15));
        assert_eq!(first[0].len(), 2);
        let rest = rings.drain(None);
        assert_eq!((rest[0].t0_ms, rest[0].len()), (20, 1));
    }

    #[test]
    fn overflow_drops_oldest_and_counts_lost_data() {
        let mut rings = set();
        for t in 0..6 {
            rings
                .append(t * 10, &[0], &[t as f64], &[0], &[true])
                .expect("append");
        }
        let stats = rings.stats();
        assert_eq!(
            (stats.held, stats.dropped, stats.dropped_undrained),
            (4, 2, 2)
        );
        let series = rings.drain(None);
        assert_eq!(series[0].t0_ms, 20);
        assert_eq!(
            series[0].values,
            SeriesValues::Float(vec![2.0, 3.0, 4.0, 5.0])
        );
        rings
            .append(60, &[0], &[6.0], &[0], &[true])
            .expect("append");
        assert_eq!(
            rings.stats().dropped_undrained,
            2,
            "dropping a drained sample loses nothing"
        );
    }

    #[test]
    fn bad_calls_change_nothing() {
        let mut rings = set();
        rings
            .append(10, &[0], &[1.0], &[0], &[true])
            .expect("append");
        assert!(rings
            .append(20, &[0, 9], &[1.0, 1.0], &[0, 0], &[true, true])
            .is_err());
        assert!(
            rings.append(10, &[0], &[1.0], &[0], &[true]).is_err(),
            "not after the last"
        );
        assert!(rings.append(20, &[0], &[1.0], &[], &[true]).is_err());
        assert_eq!(rings.stats().held, 1);
        assert!(RingSet::new(&[(SampleKind::Float, 0)], 4).is_err());
        assert!(RingSet::new(&[], 0).is_err());
    }
}
