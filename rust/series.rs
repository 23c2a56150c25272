//! Periodic series: the unit samples travel in, from the rings to the batches.
//!
//! Sampling is periodic and aligned, so a run of samples of one measurement is
//! its first instant, its period and its values; timestamps are never stored
//! one by one. A value that could not be read is *nil*: NaN for a float
//! series, [`NIL_INTEGER`] for an integer one (the INT64 "not available"
//! pattern, so it can never be a real reading).

pub use crate::decode::NIL_INTEGER;

/// The values of one series: floats, or exact integers (energy counters).
#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValues {
    /// NaN is nil.
    Float(Vec<f64>),
    /// [`NIL_INTEGER`] is nil.
    Integer(Vec<i64>),
}

impl SeriesValues {
    pub fn len(&self) -> usize {
        match self {
            SeriesValues::Float(v) => v.len(),
            SeriesValues::Integer(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values from `start` to `end` (exclusive), of the same kind.
    pub fn slice(&self, start: usize, end: usize) -> SeriesValues {
        match self {
            SeriesValues::Float(v) => SeriesValues::Float(v[start..end].to_vec()),
            SeriesValues::Integer(v) => SeriesValues::Integer(v[start..end].to_vec()),
        }
    }
}

/// Samples of one measurement at `t0_ms + j * dt_ms`, `j = 0..len`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Index of the measurement in the remote configuration's list (§7 `m`).
    pub measurement: u32,
    /// Unix milliseconds of the first sampling instant.
    pub t0_ms: i64,
    /// Sampling period in milliseconds (> 0).
    pub dt_ms: i64,
    pub values: SeriesValues,
}

impl Series {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Unix milliseconds just after the last instant (`t0 + len * dt`).
    pub fn end_ms(&self) -> i64 {
        self.t0_ms + self.len() as i64 * self.dt_ms
    }

    /// Number of this series' instants before `t_ms`.
    pub fn count_before(&self, t_ms: i64) -> usize {
        if t_ms <= self.t0_ms {
            return 0;
        }
        let n = (t_ms - self.t0_ms + self.dt_ms - 1) / self.dt_ms;
        (n.max(0) as usize).min(self.len())
    }

    /// The part of this series whose instants fall in `[from_ms, to_ms)`, if any.
    pub fn window(&self, from_ms: i64, to_ms: i64) -> Option<Series> {
        let start = self.count_before(from_ms);
        let end = self.count_before(to_ms);
        (start < end).then(|| Series {
            measurement: self.measurement,
            t0_ms: self.t0_ms + start as i64 * self.dt_ms,
            dt_ms: self.dt_ms,
            values: self.values.slice(start, end),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_cuts_on_instants() {
        let s = Series {
            measurement: 3,
            t0_ms: 1_000,
            dt_ms: 100,
            values: SeriesValues::Integer((0..10).collect()),
        };
        assert_eq!(s.end_ms(), 2_000);
        let w = s.window(1_150, 1_500).expect("non-empty");
        assert_eq!(w.t0_ms, 1_200);
        assert_eq!(w.values, SeriesValues::Integer(vec![2, 3, 4]));
        assert!(s.window(2_000, 3_000).is_none());
        assert!(s.window(0, 1_000).is_none());
        assert_eq!(s.window(0, 5_000).expect("all"), s);
    }
}
