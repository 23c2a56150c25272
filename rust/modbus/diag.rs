//! Per-device diagnostics: state, last error, round-trip times, counters.

use std::time::Duration;

use super::plan::ReadFunction;
use super::{exception_name, Address, LinkError, Quantity, RequestError, UnixMs};

/// How a device is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Not polled yet.
    Unknown,
    /// Its last cycle got an answer to every read.
    Ok,
    /// Some of its recent reads got no answer (or a device failure exception):
    /// it is polled without retries, with backoff while it keeps failing.
    Degraded,
    /// It has not answered for several cycles in a row.
    Offline,
}

impl DeviceState {
    pub fn name(self) -> &'static str {
        match self {
            DeviceState::Unknown => "unknown",
            DeviceState::Ok => "ok",
            DeviceState::Degraded => "degraded",
            DeviceState::Offline => "offline",
        }
    }
}

/// The last error of a device, kept until the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    /// `exception`, `timeout`, `transport` or `protocol`.
    pub kind: &'static str,
    /// The exception code, for exception responses.
    pub code: Option<u8>,
    /// The exception's name (`IllegalDataAddress`), or the kind for others.
    pub name: String,
    /// What happened, in words, with the request concerned.
    pub message: String,
    pub at_ms: UnixMs,
}

impl ErrorRecord {
    pub fn new(error: &RequestError, context: &str, at_ms: UnixMs) -> ErrorRecord {
        let (code, name) = match error {
            RequestError::Exception(code) => (Some(u8::from(*code)), exception_name(*code)),
            other => (None, other.kind().to_string()),
        };
        ErrorRecord {
            kind: error.kind(),
            code,
            name,
            message: format!("{context}: {error}"),
            at_ms,
        }
    }
}

/// Upper bounds of the round-trip histogram's buckets, in microseconds: from
/// a fast TCP device on the LAN (1 ms) to a slow RTU bus near its timeout
/// (5 s). Fixed, so that a metric's buckets never change between scrapes.
pub const RTT_BUCKET_BOUNDS_US: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000,
];

/// Round-trip times of answered requests: last, longest, mean, and how many
/// fell in each bucket of [`RTT_BUCKET_BOUNDS_US`] (the last bucket: above them all).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RttStats {
    pub last: Duration,
    pub max: Duration,
    pub total: Duration,
    pub count: u64,
    pub buckets: [u64; RTT_BUCKET_BOUNDS_US.len() + 1],
}

impl RttStats {
    pub fn record(&mut self, rtt: Duration) {
        self.last = rtt;
        self.max = self.max.max(rtt);
        self.total += rtt;
        self.count += 1;
        let us = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX);
        let bucket = RTT_BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[bucket] += 1;
    }

    pub fn mean(&self) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        self.total / u32::try_from(self.count).unwrap_or(u32::MAX)
    }
}

/// Registers (or bits) of one function code: `count` from `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RegisterRange {
    pub function: ReadFunction,
    pub address: Address,
    pub count: Quantity,
}

/// Everything known about one device's polling.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceDiagnostics {
    pub device_id: String,
    pub state: DeviceState,
    pub last_error: Option<ErrorRecord>,
    pub rtt: RttStats,
    /// Requests sent (reads, retries and writes).
    pub requests: u64,
    /// Requests that got no data: exceptions, timeouts, transport and protocol errors.
    pub errors: u64,
    pub timeouts: u64,
    pub exceptions: u64,
    /// Exception answers by code (`(code, count)`, in code order).
    pub exception_codes: Vec<(u8, u64)>,
    /// Connections refused, reset or closed, and answers that did not match
    /// their request. (A frame with a bad CRC is dropped by the RTU decoder,
    /// which waits for the next valid frame: its request ends as a timeout.)
    pub transport_errors: u64,
    pub protocol_errors: u64,
    /// Poll cycles run, and ticks skipped because a cycle ran past the next one.
    pub cycles: u64,
    pub overruns: u64,
    /// Reads currently in the plan (grows when a read is split after 0x02).
    pub reads_per_cycle: usize,
    /// When the last cycle was due, how long it took (its reads back to
    /// back, including retries and splits), and the last time the device answered.
    pub last_cycle_ms: Option<UnixMs>,
    pub last_cycle_duration: Duration,
    pub last_answer_ms: Option<UnixMs>,
    /// What the device said it does not have (exception 0x02, or 0x01 for a
    /// function it lacks), as narrow as the reads could be split, in address
    /// order. They are not asked for again until the device reconnects.
    pub lacking: Vec<RegisterRange>,
}

impl DeviceDiagnostics {
    pub fn new(device_id: &str) -> DeviceDiagnostics {
        DeviceDiagnostics {
            device_id: device_id.to_string(),
            state: DeviceState::Unknown,
            last_error: None,
            rtt: RttStats::default(),
            requests: 0,
            errors: 0,
            timeouts: 0,
            exceptions: 0,
            exception_codes: Vec::new(),
            transport_errors: 0,
            protocol_errors: 0,
            cycles: 0,
            overruns: 0,
            reads_per_cycle: 0,
            last_cycle_ms: None,
            last_cycle_duration: Duration::ZERO,
            last_answer_ms: None,
            lacking: Vec::new(),
        }
    }

    fn count_exception(&mut self, code: u8) {
        match self
            .exception_codes
            .binary_search_by_key(&code, |&(c, _)| c)
        {
            Ok(k) => self.exception_codes[k].1 += 1,
            Err(k) => self.exception_codes.insert(k, (code, 1)),
        }
    }

    /// Count one request's outcome; `context` (what the request was) is
    /// only written out when it failed.
    pub fn count(
        &mut self,
        outcome: Result<Duration, &RequestError>,
        context: impl FnOnce() -> String,
        at_ms: UnixMs,
    ) {
        self.requests += 1;
        match outcome {
            Ok(rtt) => {
                self.rtt.record(rtt);
                self.last_answer_ms = Some(at_ms);
            }
            Err(error) => {
                self.errors += 1;
                match error {
                    RequestError::Link(LinkError::Timeout) => self.timeouts += 1,
                    RequestError::Link(LinkError::Transport(_)) => self.transport_errors += 1,
                    RequestError::Link(LinkError::Protocol(_)) => self.protocol_errors += 1,
                    RequestError::Exception(code) => {
                        self.exceptions += 1;
                        self.count_exception(u8::from(*code));
                        self.last_answer_ms = Some(at_ms);
                    }
                }
                self.last_error = Some(ErrorRecord::new(error, &context(), at_ms));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_modbus::ExceptionCode;

    #[test]
    fn rtt_stats_track_last_mean_max() {
        let mut rtt = RttStats::default();
        assert_eq!(rtt.mean(), Duration::ZERO);
        for ms in [10, 30, 20] {
            rtt.record(Duration::from_millis(ms));
        }
        assert_eq!(rtt.last, Duration::from_millis(20));
        assert_eq!(rtt.max, Duration::from_millis(30));
        assert_eq!(rtt.mean(), Duration::from_millis(20));
        // 10 ms is in the bucket bounded by 10 ms (bounds are inclusive, as
        // Prometheus' `le`), 20 ms in the one up to 25 ms, 30 ms up to 50 ms.
        assert_eq!(rtt.buckets[3..6], [1, 1, 1]);
        assert_eq!(rtt.buckets.iter().sum::<u64>(), 3);
        rtt.record(Duration::from_secs(9));
        assert_eq!(rtt.buckets[RTT_BUCKET_BOUNDS_US.len()], 1);
    }

    #[test]
    fn outcomes_are_counted_by_layer() {
        let mut diag = DeviceDiagnostics::new("m1");
        let read = || "read 3@0+2".to_string();
        diag.count(Ok(Duration::from_millis(3)), read, 1);
        let timeout = RequestError::Link(LinkError::Timeout);
        diag.count(Err(&timeout), read, 2);
        let exception = RequestError::Exception(ExceptionCode::ServerDeviceBusy);
        diag.count(Err(&exception), read, 3);
        let reset = RequestError::Link(LinkError::Transport("connection reset".into()));
        diag.count(Err(&reset), read, 4);
        let mismatch = RequestError::Link(LinkError::Protocol("wrong unit id".into()));
        diag.count(Err(&mismatch), read, 5);
        let illegal = RequestError::Exception(ExceptionCode::IllegalDataAddress);
        diag.count(Err(&illegal), read, 6);
        diag.count(Err(&exception), read, 7);
        assert_eq!(
            (diag.requests, diag.errors, diag.timeouts, diag.exceptions),
            (7, 6, 1, 3)
        );
        assert_eq!((diag.transport_errors, diag.protocol_errors), (1, 1));
        assert_eq!(diag.exception_codes, vec![(2, 1), (6, 2)]);
        let last = diag.last_error.unwrap();
        assert_eq!(last.code, Some(6));
        assert_eq!(last.name, "ServerDeviceBusy");
        assert_eq!(last.message, "read 3@0+2: exception 0x06 ServerDeviceBusy");
        assert_eq!(diag.last_answer_ms, Some(7));
    }
}
