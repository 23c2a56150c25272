//! Data batches of the cloud protocol (§7): MessagePack + zstd, both ways.
//!
//! ```text
//! {"v": 1, "seq": u64, "config_version": str,
//!  "groups": [{"t0": unix ms, "dt": ms, "m": [index...], "v": [[float | int | nil...]...]}]}
//! ```
//!
//! Series that share their first instant, period and length form one group,
//! so timestamps are never sent one by one. Floats go as float32 where that
//! is exact (half the bytes), else float64; exact integers as the smallest
//! MessagePack integer; nil where a sample could not be read.
//!
//! [`encode_batches`] cuts a set of series into consecutive time windows whose
//! compressed body stays within the hub's limit, and numbers them from a
//! first `seq`. The output is deterministic: the same series, version, seq and
//! level give the same bytes.

use std::io::Read;

use rmp::encode;
use rmp::Marker;

use crate::series::{Series, SeriesValues, NIL_INTEGER};
use crate::{Error, Result};

/// Largest request body the hub accepts, on the wire (§1).
pub const MAX_BODY_BYTES: usize = 256_000;
/// zstd level for batches: each batch is compressed once and may wait in the
/// outbox for a long time, so a high level pays (≈2.7 bytes per noisy float
/// sample at 19 against ≈4.2 at 3).
pub const DEFAULT_LEVEL: i32 = 19;
/// Largest decompressed batch [`decode_batch`] accepts by default.
pub const DEFAULT_MAX_DECOMPRESSED: usize = 64 << 20;

/// How [`encode_batches`] cuts and compresses.
#[derive(Debug, Clone, Copy)]
pub struct BatchOptions {
    /// Largest compressed body of one batch.
    pub max_bytes: usize,
    /// zstd compression level (1..=22).
    pub level: i32,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions {
            max_bytes: MAX_BODY_BYTES,
            level: DEFAULT_LEVEL,
        }
    }
}

/// One encoded batch, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBatch {
    pub seq: u64,
    /// The zstd frame: the request body.
    pub body: Vec<u8>,
    /// Samples in the batch, nils included.
    pub samples: u64,
    /// The MessagePack size before compression.
    pub raw_bytes: usize,
    /// First sampling instant and just after the last one (unix ms).
    pub first_ms: i64,
    pub end_ms: i64,
}

/// A sample value as sent on the wire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Nil,
    Int(i64),
    Float(f64),
}

/// A decoded group: samples of `measurements[k]` at `t0_ms + j * dt_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub t0_ms: i64,
    pub dt_ms: i64,
    pub measurements: Vec<u32>,
    pub values: Vec<Vec<Value>>,
}

/// A decoded batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub seq: u64,
    pub config_version: String,
    pub groups: Vec<Group>,
}

/// Check that series can share a batch: positive periods, and each
/// measurement's time ranges disjoint (§7).
fn check_series(series: &[Series]) -> Result<()> {
    let mut ranges: Vec<(u32, i64, i64)> = Vec::with_capacity(series.len());
    for s in series.iter().filter(|s| !s.is_empty()) {
        if s.dt_ms <= 0 {
            return Err(Error::Batch(format!(
                "measurement {}: period must be positive, not {} ms",
                s.measurement, s.dt_ms
            )));
        }
        ranges.push((s.measurement, s.t0_ms, s.end_ms()));
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((m, _, end), (m2, start, _)) = (pair[0], pair[1]);
        if m == m2 && start < end {
            return Err(Error::Batch(format!(
                "measurement {m}: two series overlap at {start} ms"
            )));
        }
    }
    Ok(())
}

// Samples are written by hand rather than through `rmp::encode`: this loop
// runs once per sample, and its error plumbing (a Vec cannot fail) costs more
// than the encoding itself.
#[inline(always)]
fn write_value_f64(buf: &mut Vec<u8>, v: f64) {
    let single = v as f32;
    if v.is_nan() {
        buf.push(0xc0);
    } else if f64::from(single) == v {
        buf.push(0xca);
        buf.extend_from_slice(&single.to_be_bytes());
    } else {
        buf.push(0xcb);
        buf.extend_from_slice(&v.to_be_bytes());
    }
}

/// The smallest MessagePack integer for `v`, as `rmp::encode::write_sint` picks it.
#[inline(always)]
fn write_value_i64(buf: &mut Vec<u8>, v: i64) {
    match v {
        0..=127 => buf.push(v as u8),
        -32..=-1 => buf.push(v as i8 as u8),
        128..=255 => buf.extend_from_slice(&[0xcc, v as u8]),
        256..=65_535 => {
            buf.push(0xcd);
            buf.extend_from_slice(&(v as u16).to_be_bytes());
        }
        65_536..=4_294_967_295 => {
            buf.push(0xce);
            buf.extend_from_slice(&(v as u32).to_be_bytes());
        }
        4_294_967_296.. => {
            buf.push(0xcf);
            buf.extend_from_slice(&(v as u64).to_be_bytes());
        }
        -128..=-33 => buf.extend_from_slice(&[0xd0, v as i8 as u8]),
        -32_768..=-129 => {
            buf.push(0xd1);
            buf.extend_from_slice(&(v as i16).to_be_bytes());
        }
        -2_147_483_648..=-32_769 => {
            buf.push(0xd2);
            buf.extend_from_slice(&(v as i32).to_be_bytes());
        }
        _ => {
            buf.push(0xd3);
            buf.extend_from_slice(&v.to_be_bytes());
        }
    }
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    let _ = encode::write_str(buf, s);
}

/// The MessagePack map of one batch (not compressed).
pub fn encode_msgpack(seq: u64, config_version: &str, series: &[Series]) -> Result<Vec<u8>> {
    check_series(series)?;
    let mut order: Vec<&Series> = series.iter().filter(|s| !s.is_empty()).collect();
    order.sort_unstable_by_key(|s| (s.t0_ms, s.dt_ms, s.len(), s.measurement));
    let samples: usize = order.iter().map(|s| s.len()).sum();
    let mut buf = Vec::with_capacity(64 + samples * 5 + order.len() * 4);
    let _ = encode::write_map_len(&mut buf, 4);
    write_str(&mut buf, "v");
    let _ = encode::write_uint(&mut buf, 1);
    write_str(&mut buf, "seq");
    let _ = encode::write_uint(&mut buf, seq);
    write_str(&mut buf, "config_version");
    write_str(&mut buf, config_version);
    write_str(&mut buf, "groups");
    let groups: Vec<&[&Series]> = order
        .chunk_by(|a, b| (a.t0_ms, a.dt_ms, a.len()) == (b.t0_ms, b.dt_ms, b.len()))
        .collect();
    let _ = encode::write_array_len(&mut buf, groups.len() as u32);
    for group in groups {
        let first = group[0];
        let _ = encode::write_map_len(&mut buf, 4);
        write_str(&mut buf, "t0");
        let _ = encode::write_sint(&mut buf, first.t0_ms);
        write_str(&mut buf, "dt");
        let _ = encode::write_sint(&mut buf, first.dt_ms);
        write_str(&mut buf, "m");
        let _ = encode::write_array_len(&mut buf, group.len() as u32);
        for s in group {
            let _ = encode::write_uint(&mut buf, u64::from(s.measurement));
        }
        write_str(&mut buf, "v");
        let _ = encode::write_array_len(&mut buf, group.len() as u32);
        for s in group {
            let _ = encode::write_array_len(&mut buf, s.len() as u32);
            match &s.values {
                SeriesValues::Float(values) => {
                    for &v in values {
                        write_value_f64(&mut buf, v);
                    }
                }
                SeriesValues::Integer(values) => {
                    for &v in values {
                        if v == NIL_INTEGER {
                            buf.push(0xc0);
                        } else {
                            write_value_i64(&mut buf, v);
                        }
                    }
                }
            }
        }
    }
    Ok(buf)
}

fn compress(raw: &[u8], level: i32) -> Result<Vec<u8>> {
    zstd::bulk::compress(raw, level).map_err(|e| Error::Batch(format!("zstd: {e}")))
}

fn total_samples(series: &[Series]) -> usize {
    series.iter().map(Series::len).sum()
}

/// Samples of `series` at instants in `[from, to)`.
fn samples_between(series: &[Series], from: i64, to: i64) -> usize {
    series
        .iter()
        .map(|s| s.count_before(to) - s.count_before(from))
        .sum()
}

/// The earliest `to` in `(from, end]` with at least `target` samples in
/// `[from, to)`, or `end`.
fn window_end(series: &[Series], from: i64, end: i64, target: usize) -> i64 {
    let (mut lo, mut hi) = (from + 1, end);
    if samples_between(series, from, hi) <= target {
        return end;
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if samples_between(series, from, mid) >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    lo
}

fn span(series: &[Series]) -> Option<(i64, i64)> {
    let start = series
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.t0_ms)
        .min()?;
    let end = series.iter().map(Series::end_ms).max()?;
    Some((start, end))
}

struct Packer<'a> {
    config_version: &'a str,
    options: BatchOptions,
    next_seq: u64,
    out: Vec<EncodedBatch>,
}

impl Packer<'_> {
    /// Encode `pieces` as one batch, or split them until every part fits.
    fn pack(&mut self, pieces: Vec<Series>) -> Result<()> {
        let samples = total_samples(&pieces);
        let Some((first_ms, end_ms)) = span(&pieces) else {
            return Ok(());
        };
        let raw = encode_msgpack(self.next_seq, self.config_version, &pieces)?;
        let body = compress(&raw, self.options.level)?;
        if body.len() <= self.options.max_bytes {
            self.out.push(EncodedBatch {
                seq: self.next_seq,
                body,
                samples: samples as u64,
                raw_bytes: raw.len(),
                first_ms,
                end_ms,
            });
            self.next_seq += 1;
            return Ok(());
        }
        // Too large: halve in time, or, within one instant, by measurement.
        let mid = window_end(&pieces, first_ms, end_ms, samples / 2);
        if mid < end_ms && mid > first_ms {
            let left = pieces
                .iter()
                .filter_map(|s| s.window(first_ms, mid))
                .collect();
            let right = pieces
                .iter()
                .filter_map(|s| s.window(mid, end_ms))
                .collect();
            self.pack(left)?;
            return self.pack(right);
        }
        if pieces.len() > 1 {
            let mut left = pieces;
            let right = left.split_off(left.len() / 2);
            self.pack(left)?;
            return self.pack(right);
        }
        if samples > 1 {
            let s = &pieces[0];
            let mid = s.t0_ms + (samples / 2) as i64 * s.dt_ms;
            let halves = [s.window(s.t0_ms, mid), s.window(mid, s.end_ms())];
            for half in halves.into_iter().flatten() {
                self.pack(vec![half])?;
            }
            return Ok(());
        }
        Err(Error::Batch(format!(
            "a single sample takes {} bytes, over the limit of {}",
            body.len(),
            self.options.max_bytes
        )))
    }
}

/// Cut `series` into batches numbered from `first_seq`, each compressed body
/// at most `options.max_bytes`, oldest samples first.
pub fn encode_batches(
    series: &[Series],
    config_version: &str,
    first_seq: u64,
    options: BatchOptions,
) -> Result<Vec<EncodedBatch>> {
    check_series(series)?;
    if !(1..=22).contains(&options.level) {
        return Err(Error::Batch(format!(
            "zstd level must be 1..=22, not {}",
            options.level
        )));
    }
    let Some((start, end)) = span(series) else {
        return Ok(Vec::new());
    };
    let mut packer = Packer {
        config_version,
        options,
        next_seq: first_seq,
        out: Vec::new(),
    };
    // Windows are sized from the compression seen so far, starting from a
    // guess that is safe for noisy float32 data; a window that still comes
    // out too large is split by `pack`.
    let mut bytes_per_sample = 4.0_f64;
    let mut from = start;
    while from < end {
        let target = ((options.max_bytes as f64 * 0.95) / bytes_per_sample).max(1.0) as usize;
        let to = window_end(series, from, end, target);
        let pieces: Vec<Series> = series.iter().filter_map(|s| s.window(from, to)).collect();
        let before = packer.out.len();
        packer.pack(pieces)?;
        let made = &packer.out[before..];
        let bytes: usize = made.iter().map(|b| b.body.len()).sum();
        let samples: u64 = made.iter().map(|b| b.samples).sum();
        if samples > 0 && made.len() == 1 {
            bytes_per_sample = (bytes as f64 / samples as f64).max(0.05);
        } else if made.len() > 1 {
            bytes_per_sample *= 1.3;
        }
        from = to;
    }
    Ok(packer.out)
}

/// Decode a batch body (zstd frame of a MessagePack map), checking it is a
/// well-formed §7 batch; at most `max_decompressed` bytes are inflated.
pub fn decode_batch(frame: &[u8], max_decompressed: usize) -> Result<Batch> {
    decode_msgpack(&inflate(frame, max_decompressed)?)
}

/// The series a batch holds: a list with an integer in it is an integer
/// series, any other a float series (nil is NaN or [`NIL_INTEGER`]).
pub fn series_of(batch: &Batch) -> Vec<Series> {
    let mut out = Vec::new();
    for g in &batch.groups {
        for (&measurement, values) in g.measurements.iter().zip(&g.values) {
            let has_float = values.iter().any(|v| matches!(v, Value::Float(_)));
            let has_int = values.iter().any(|v| matches!(v, Value::Int(_)));
            let values = if has_int && !has_float {
                SeriesValues::Integer(
                    values
                        .iter()
                        .map(|v| match v {
                            Value::Int(i) => *i,
                            _ => NIL_INTEGER,
                        })
                        .collect(),
                )
            } else {
                SeriesValues::Float(
                    values
                        .iter()
                        .map(|v| match v {
                            Value::Int(i) => *i as f64,
                            Value::Float(f) => *f,
                            Value::Nil => f64::NAN,
                        })
                        .collect(),
                )
            };
            out.push(Series {
                measurement,
                t0_ms: g.t0_ms,
                dt_ms: g.dt_ms,
                values,
            });
        }
    }
    out
}

/// Merge stored batch bodies of one configuration version into new batches
/// numbered from `first_seq`, each within `options.max_bytes`.
///
/// The outbox keeps unsent samples as batches numbered provisionally 0 and
/// gathers them into full batches here; a number is given for good only
/// when a batch is about to be sent. Merged series of one measurement that
/// continue each other are joined, so the result has as few groups as the
/// samples allow.
pub fn rebatch(
    bodies: &[&[u8]],
    config_version: &str,
    first_seq: u64,
    options: BatchOptions,
) -> Result<Vec<EncodedBatch>> {
    let mut series = Vec::new();
    for (k, body) in bodies.iter().enumerate() {
        let batch = decode_msgpack_from(&inflate(body, DEFAULT_MAX_DECOMPRESSED)?, 0)
            .map_err(|e| Error::Batch(format!("stored batch {k}: {e}")))?;
        if batch.config_version != config_version {
            return Err(Error::Batch(format!(
                "stored batch {k} is of configuration {:?}, not {config_version:?}",
                batch.config_version
            )));
        }
        series.extend(series_of(&batch));
    }
    encode_batches(&join(series), config_version, first_seq, options)
}

/// Join series of one measurement where one starts at the end of the other.
fn join(mut series: Vec<Series>) -> Vec<Series> {
    series.sort_by_key(|s| (s.measurement, s.t0_ms));
    let mut out: Vec<Series> = Vec::with_capacity(series.len());
    for s in series {
        if let Some(last) = out.last_mut() {
            if last.measurement == s.measurement
                && last.dt_ms == s.dt_ms
                && last.end_ms() == s.t0_ms
            {
                match (&mut last.values, s.values) {
                    (SeriesValues::Float(a), SeriesValues::Float(b)) => {
                        a.extend(b);
                        continue;
                    }
                    (SeriesValues::Integer(a), SeriesValues::Integer(b)) => {
                        a.extend(b);
                        continue;
                    }
                    (_, values) => {
                        out.push(Series { values, ..s });
                        continue;
                    }
                }
            }
        }
        out.push(s);
    }
    out
}

fn inflate(frame: &[u8], max_decompressed: usize) -> Result<Vec<u8>> {
    let decoder =
        zstd::stream::read::Decoder::new(frame).map_err(|e| Error::Batch(format!("zstd: {e}")))?;
    let mut raw = Vec::new();
    decoder
        .take(max_decompressed as u64 + 1)
        .read_to_end(&mut raw)
        .map_err(|e| Error::Batch(format!("not a zstd frame: {e}")))?;
    if raw.len() > max_decompressed {
        return Err(Error::Batch(format!(
            "decompresses to more than {max_decompressed} bytes"
        )));
    }
    Ok(raw)
}

/// Decode the MessagePack map of a batch.
pub fn decode_msgpack(raw: &[u8]) -> Result<Batch> {
    decode_msgpack_from(raw, 1)
}

fn decode_msgpack_from(raw: &[u8], min_seq: i64) -> Result<Batch> {
    let mut rd = Reader { buf: raw };
    let batch = rd.batch(min_seq)?;
    if !rd.buf.is_empty() {
        return Err(Error::Batch(format!(
            "{} bytes after the batch map",
            rd.buf.len()
        )));
    }
    Ok(batch)
}

/// A bounded reader of MessagePack: every length is checked against the bytes left.
struct Reader<'a> {
    buf: &'a [u8],
}

fn malformed<T>(what: &str) -> Result<T> {
    Err(Error::Batch(what.to_string()))
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return malformed("truncated MessagePack");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn marker(&mut self) -> Result<Marker> {
        Ok(Marker::from_u8(self.take(1)?[0]))
    }

    /// A length, bounded by what is left (every element takes at least a byte).
    fn bounded(&self, n: u64, what: &str) -> Result<usize> {
        if n > self.buf.len() as u64 {
            return malformed(&format!(
                "{what} claims {n} entries, more than the bytes left"
            ));
        }
        Ok(n as usize)
    }

    fn map_len(&mut self, what: &str) -> Result<usize> {
        let n = match self.marker()? {
            Marker::FixMap(n) => u64::from(n),
            Marker::Map16 => self.be(2)?,
            Marker::Map32 => self.be(4)?,
            _ => return malformed(&format!("{what} is not a map")),
        };
        self.bounded(n, what)
    }

    fn array_len(&mut self, what: &str) -> Result<usize> {
        let n = match self.marker()? {
            Marker::FixArray(n) => u64::from(n),
            Marker::Array16 => self.be(2)?,
            Marker::Array32 => self.be(4)?,
            _ => return malformed(&format!("{what} is not a list")),
        };
        self.bounded(n, what)
    }

    fn str(&mut self, what: &str) -> Result<&'a str> {
        let n = match self.marker()? {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.be(1)? as usize,
            Marker::Str16 => self.be(2)? as usize,
            Marker::Str32 => self.be(4)? as usize,
            _ => return malformed(&format!("{what} is not a string")),
        };
        std::str::from_utf8(self.take(n)?).or_else(|_| malformed(&format!("{what} is not UTF-8")))
    }

    fn value(&mut self) -> Result<Value> {
        Ok(match self.marker()? {
            Marker::Null => Value::Nil,
            Marker::FixPos(n) => Value::Int(i64::from(n)),
            Marker::FixNeg(n) => Value::Int(i64::from(n)),
            Marker::U8 => Value::Int(self.be(1)? as i64),
            Marker::U16 => Value::Int(self.be(2)? as i64),
            Marker::U32 => Value::Int(self.be(4)? as i64),
            Marker::U64 => {
                let v = self.be(8)?;
                if v > i64::MAX as u64 {
                    return malformed("integer beyond the int64 range");
                }
                Value::Int(v as i64)
            }
            Marker::I8 => Value::Int(i64::from(self.be(1)? as u8 as i8)),
            Marker::I16 => Value::Int(i64::from(self.be(2)? as u16 as i16)),
            Marker::I32 => Value::Int(i64::from(self.be(4)? as u32 as i32)),
            Marker::I64 => Value::Int(self.be(8)? as i64),
            Marker::F32 => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => Value::Float(f64::from_bits(self.be(8)?)),
            _ => return malformed("a sample is not a number or nil"),
        })
    }

    fn int(&mut self, what: &str) -> Result<i64> {
        match self.value() {
            Ok(Value::Int(v)) => Ok(v),
            _ => malformed(&format!("{what} is not an integer")),
        }
    }

    /// Skip one value of any kind (an unknown key's), nesting at most 32 deep.
    fn skip(&mut self, depth: u32) -> Result<()> {
        if depth > 32 {
            return malformed("nested too deep");
        }
        let marker = Marker::from_u8(
            *self
                .buf
                .first()
                .ok_or(Error::Batch("truncated MessagePack".into()))?,
        );
        match marker {
            Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
                for _ in 0..self.map_len("value")? * 2 {
                    self.skip(depth + 1)?;
                }
            }
            Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
                for _ in 0..self.array_len("value")? {
                    self.skip(depth + 1)?;
                }
            }
            Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => {
                self.str("value")?;
            }
            Marker::True | Marker::False => {
                self.take(1)?;
            }
            Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => {
                let n = match self.marker()? {
                    Marker::Bin8 => self.be(1)?,
                    Marker::Bin16 => self.be(2)?,
                    _ => self.be(4)?,
                };
                self.take(self.bounded(n, "binary")?)?;
            }
            _ => {
                self.value()?;
            }
        }
        Ok(())
    }

    fn batch(&mut self, min_seq: i64) -> Result<Batch> {
        let (mut version, mut seq, mut config_version, mut groups) = (None, None, None, None);
        for _ in 0..self.map_len("the batch")? {
            match self.str("a key")? {
                "v" => version = Some(self.int("v")?),
                "seq" => seq = Some(self.int("seq")?),
                "config_version" => config_version = Some(self.str("config_version")?.to_string()),
                "groups" => {
                    let n = self.array_len("groups")?;
                    let mut list = Vec::with_capacity(n);
                    for g in 0..n {
                        list.push(self.group(g)?);
                    }
                    groups = Some(list);
                }
                _ => self.skip(0)?,
            }
        }
        match version {
            Some(1) => {}
            Some(v) => return malformed(&format!("unsupported batch version v={v}")),
            None => return malformed("missing key \"v\""),
        }
        let seq = seq.ok_or(Error::Batch("missing key \"seq\"".into()))?;
        if seq < min_seq {
            return malformed(&format!("seq must be at least {min_seq}, not {seq}"));
        }
        let batch = Batch {
            seq: seq as u64,
            config_version: config_version
                .ok_or(Error::Batch("missing key \"config_version\"".into()))?,
            groups: groups.ok_or(Error::Batch("missing key \"groups\"".into()))?,
        };
        check_disjoint(&batch)?;
        Ok(batch)
    }

    fn group(&mut self, g: usize) -> Result<Group> {
        let (mut t0, mut dt, mut m, mut v) = (None, None, None, None);
        for _ in 0..self.map_len(&format!("groups[{g}]"))? {
            match self.str("a key")? {
                "t0" => t0 = Some(self.int(&format!("groups[{g}].t0"))?),
                "dt" => dt = Some(self.int(&format!("groups[{g}].dt"))?),
                "m" => {
                    let n = self.array_len(&format!("groups[{g}].m"))?;
                    let mut list = Vec::with_capacity(n);
                    for k in 0..n {
                        let i = self.int(&format!("groups[{g}].m[{k}]"))?;
                        let i = u32::try_from(i).or_else(|_| {
                            malformed(&format!("groups[{g}].m[{k}] = {i} is not an index"))
                        })?;
                        list.push(i);
                    }
                    m = Some(list);
                }
                "v" => {
                    let n = self.array_len(&format!("groups[{g}].v"))?;
                    let mut lists = Vec::with_capacity(n);
                    for k in 0..n {
                        let len = self.array_len(&format!("groups[{g}].v[{k}]"))?;
                        let mut values = Vec::with_capacity(len);
                        for _ in 0..len {
                            values.push(self.value()?);
                        }
                        lists.push(values);
                    }
                    v = Some(lists);
                }
                _ => self.skip(0)?,
            }
        }
        let missing = |key: &str| Error::Batch(format!("groups[{g}]: missing key \"{key}\""));
        let group = Group {
            t0_ms: t0.ok_or_else(|| missing("t0"))?,
            dt_ms: dt.ok_or_else(|| missing("dt"))?,
            measurements: m.ok_or_else(|| missing("m"))?,
            values: v.ok_or_else(|| missing("v"))?,
        };
        if group.dt_ms <= 0 {
            return malformed(&format!(
                "groups[{g}].dt must be positive, not {}",
                group.dt_ms
            ));
        }
        if group.measurements.len() != group.values.len() {
            return malformed(&format!(
                "groups[{g}]: {} measurements but {} value lists",
                group.measurements.len(),
                group.values.len()
            ));
        }
        if let Some(first) = group.values.first() {
            if let Some(k) = group.values.iter().position(|v| v.len() != first.len()) {
                return malformed(&format!(
                    "groups[{g}].v[{k}] has {} samples, groups[{g}].v[0] has {}",
                    group.values[k].len(),
                    first.len()
                ));
            }
            if first.is_empty() {
                return malformed(&format!("groups[{g}] has no samples"));
            }
        }
        let mut seen = group.measurements.clone();
        seen.sort_unstable();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return malformed(&format!("groups[{g}] names measurement {} twice", w[0]));
        }
        Ok(group)
    }
}

/// Across a batch's groups, each measurement's time ranges are disjoint (§7).
fn check_disjoint(batch: &Batch) -> Result<()> {
    let mut ranges = Vec::new();
    for g in &batch.groups {
        let n = g.values.first().map_or(0, Vec::len) as i64;
        let end = g
            .dt_ms
            .checked_mul(n)
            .and_then(|d| g.t0_ms.checked_add(d))
            .ok_or(Error::Batch("group time range overflows".into()))?;
        for &m in &g.measurements {
            ranges.push((m, g.t0_ms, end));
        }
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        if pair[0].0 == pair[1].0 && pair[1].1 < pair[0].2 {
            return malformed(&format!(
                "measurement {} has overlapping groups at {} ms",
                pair[0].0, pair[1].1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_series(m: u32, t0: i64, values: Vec<f64>) -> Series {
        Series {
            measurement: m,
            t0_ms: t0,
            dt_ms: 1000,
            values: SeriesValues::Float(values),
        }
    }

    #[test]
    fn round_trip_with_floats_ints_and_nils() {
        let series = vec![
            float_series(0, 60_000, vec![230.5, f64::NAN, 0.1]),
            float_series(2, 60_000, vec![1.0, 2.0, 3.0]),
            Series {
                measurement: 1,
                t0_ms: 0,
                dt_ms: 600_000,
                values: SeriesValues::Integer(vec![i64::MAX, NIL_INTEGER]),
            },
        ];
        let batches = encode_batches(&series, "17", 5, BatchOptions::default()).expect("encodes");
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].samples, 8);
        let batch = decode_batch(&batches[0].body, DEFAULT_MAX_DECOMPRESSED).expect("decodes");
        assert_eq!((batch.seq, batch.config_version.as_str()), (5, "17"));
        assert_eq!(
            batch.groups.len(),
            2,
            "series sharing t0, dt and length share a group"
        );
        let g = &batch.groups[1];
        assert_eq!(
            (g.t0_ms, g.dt_ms, g.measurements.clone()),
            (60_000, 1000, vec![0, 2])
        );
        assert_eq!(
            g.values[0],
            vec![Value::Float(230.5), Value::Nil, Value::Float(0.1)]
        );
        assert_eq!(
            batch.groups[0].values[0],
            vec![Value::Int(i64::MAX), Value::Nil]
        );
    }

    #[test]
    fn float32_only_where_exact() {
        let raw = encode_msgpack(1, "1", &[float_series(0, 0, vec![0.5, 0.1])]).expect("encodes");
        // 0.5 is a float32 (0xca), 0.1 is not (0xcb).
        let tail = &raw[raw.len() - 14..];
        assert_eq!(tail[0], 0xca);
        assert_eq!(tail[5], 0xcb);
    }

    #[test]
    fn integers_take_the_same_bytes_as_rmp() {
        let edges = [
            0,
            1,
            127,
            128,
            255,
            256,
            65_535,
            65_536,
            4_294_967_295,
            4_294_967_296,
            i64::MAX,
            -1,
            -32,
            -33,
            -128,
            -129,
            -32_768,
            -32_769,
            -2_147_483_648,
            -2_147_483_649,
            i64::MIN + 1,
        ];
        for v in edges {
            let (mut ours, mut theirs) = (Vec::new(), Vec::new());
            write_value_i64(&mut ours, v);
            encode::write_sint(&mut theirs, v).expect("writes to a Vec");
            assert_eq!(ours, theirs, "{v}");
        }
    }

    #[test]
    fn rebatch_merges_provisional_chunks_and_numbers_them() {
        let chunks: Vec<Vec<u8>> = (0..4)
            .map(|k| {
                let series = vec![
                    float_series(0, k * 3000, vec![1.0, 2.0, 3.0]),
                    Series {
                        measurement: 1,
                        t0_ms: k * 3000,
                        dt_ms: 1000,
                        values: SeriesValues::Integer(vec![k, k + 1, NIL_INTEGER]),
                    },
                ];
                let batches =
                    encode_batches(&series, "7", 0, BatchOptions::default()).expect("encodes");
                batches[0].body.clone()
            })
            .collect();
        assert!(
            decode_batch(&chunks[0], DEFAULT_MAX_DECOMPRESSED).is_err(),
            "seq 0 never passes as sendable"
        );
        let bodies: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let merged = rebatch(&bodies, "7", 41, BatchOptions::default()).expect("rebatches");
        assert_eq!(merged.len(), 1);
        let batch = decode_batch(&merged[0].body, DEFAULT_MAX_DECOMPRESSED).expect("decodes");
        assert_eq!(batch.seq, 41);
        assert_eq!(batch.groups.len(), 1, "continuing series are joined");
        assert_eq!(batch.groups[0].values[1][3], Value::Int(1));
        assert_eq!(batch.groups[0].values[1][2], Value::Nil);
        assert!(
            rebatch(&bodies, "8", 1, BatchOptions::default()).is_err(),
            "one version per batch"
        );
    }

    #[test]
    fn deterministic() {
        let series: Vec<Series> = (0..50)
            .map(|m| float_series(m, 0, vec![m as f64; 100]))
            .collect();
        let a = encode_batches(&series, "v", 1, BatchOptions::default()).expect("encodes");
        let b = encode_batches(&series, "v", 1, BatchOptions::default()).expect("encodes");
        assert_eq!(a, b);
    }

    #[test]
    fn large_sets_split_under_the_limit_in_time_order() {
        let mut x = 1u64;
        let series: Vec<Series> = (0..200)
            .map(|m| {
                let values = (0..500)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        f64::from(((x >> 33) as u32) as f32 / 7.0)
                    })
                    .collect();
                float_series(m, 0, values)
            })
            .collect();
        let options = BatchOptions {
            max_bytes: 50_000,
            level: 3,
        };
        let batches = encode_batches(&series, "v", 10, options).expect("encodes");
        assert!(batches.len() > 5);
        let mut total = 0;
        for (k, b) in batches.iter().enumerate() {
            assert!(b.body.len() <= 50_000);
            assert_eq!(b.seq, 10 + k as u64);
            if k > 0 {
                assert!(
                    b.first_ms >= batches[k - 1].end_ms,
                    "batches follow each other in time"
                );
            }
            total += b.samples;
        }
        assert_eq!(total, 200 * 500);
    }

    #[test]
    fn overlapping_series_are_refused() {
        let err = encode_msgpack(
            1,
            "v",
            &[
                float_series(3, 0, vec![1.0; 5]),
                float_series(3, 2000, vec![1.0]),
            ],
        )
        .expect_err("overlap");
        assert!(err.to_string().contains("measurement 3"), "{err}");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(decode_batch(b"not zstd", 1 << 20).is_err());
        let raw = encode_msgpack(1, "v", &[float_series(0, 0, vec![1.0, 2.0])]).expect("encodes");
        for cut in 0..raw.len() {
            assert!(decode_msgpack(&raw[..cut]).is_err(), "truncated at {cut}");
        }
        // A list claiming 2^32-1 entries must not allocate them.
        assert!(decode_msgpack(&[0x81, 0xa1, b'x', 0xdd, 0xff, 0xff, 0xff, 0xff]).is_err());
        // A zip bomb is cut at the limit.
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 20], 3).expect("compresses");
        assert!(decode_batch(&bomb, 1000)
            .expect_err("too large")
            .to_string()
            .contains("more than"));
    }
}
