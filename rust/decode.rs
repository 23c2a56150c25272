//! Register layouts → values.
//!
//! A [`Layout`] is compiled once from a device model's fields and then decodes
//! every poll's register blocks in one call. Fields are grouped by data type at
//! compile time so each group decodes in a tight loop; where the fields sit in
//! the blocks is resolved once per block shape and cached, because a device is
//! read with the same plan cycle after cycle.
//!
//! Output per field: a float value (NaN when not available), the exact integer
//! for unscaled integer fields (energy counters must not pass through f64), and
//! a validity flag. A raw value equal to the field's sentinel ("not available"
//! in the device's register list) is invalid, never a number.

use std::sync::Mutex;

use crate::{Error, Result};

pub use crate::datatype::DataType;

/// Byte order of a value across its registers, named as the bytes of a 32-bit
/// value `A B C D` appear on the wire. 64-bit values follow the same rule over
/// four registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WordOrder {
    /// Big-endian, high word first (Modbus's own order).
    Abcd,
    /// Words swapped (low word first), bytes big-endian within each word.
    Cdab,
    /// Bytes swapped within each word, high word first.
    Badc,
    /// Fully little-endian.
    Dcba,
}

impl WordOrder {
    pub const ALL: [(WordOrder, &'static str); 4] = [
        (WordOrder::Abcd, "ABCD"),
        (WordOrder::Cdab, "CDAB"),
        (WordOrder::Badc, "BADC"),
        (WordOrder::Dcba, "DCBA"),
    ];

    pub fn from_name(name: &str) -> Option<WordOrder> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(o, _)| *o)
    }

    fn bytes_swapped(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
}

/// Which raw pattern means "not available".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sentinel {
    /// The type's usual one (0x8000 for INT16, 0xFFFF for UINT16, 0xFFC00000 for FLOAT32...).
    #[default]
    Default,
    /// Every raw pattern is a value.
    Disabled,
    /// This raw pattern (the value's bits, after reordering to big-endian).
    Raw(u64),
}

/// One field of a register layout, as a device model describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// Zero-based register address, as on the wire.
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    /// value = raw × scale + offset.
    pub scale: f64,
    pub offset: f64,
    pub sentinel: Sentinel,
    /// BITMAP: first bit (0 = least significant) and width.
    pub bit: u8,
    pub bits: u8,
    /// ASCII: number of registers.
    pub length: u16,
}

impl FieldSpec {
    /// A field of `data_type` at `address`, big-endian, unscaled, default sentinel.
    pub fn new(address: u16, data_type: DataType) -> FieldSpec {
        FieldSpec {
            address,
            data_type,
            order: WordOrder::Abcd,
            scale: 1.0,
            offset: 0.0,
            sentinel: Sentinel::Default,
            bit: 0,
            bits: 1,
            length: 0,
        }
    }

    /// Registers this field occupies.
    pub fn registers(&self) -> u16 {
        match self.data_type {
            DataType::Ascii => self.length,
            t => t.width(),
        }
    }

    /// Whether the value is an exact integer (carried as `i64`, never rounded through f64).
    pub fn is_exact(&self) -> bool {
        // DATETIME takes no scale or offset: it is always exact.
        self.data_type.is_exact()
            && ((self.scale == 1.0 && self.offset == 0.0) || self.data_type == DataType::Datetime)
    }

    fn describe(&self, index: usize) -> String {
        format!(
            "field {index} (address {}, {})",
            self.address,
            self.data_type.name()
        )
    }

    fn validate(&self, index: usize) -> Result<()> {
        let bad = |problem: String| {
            Err(Error::Layout(format!(
                "{}: {problem}",
                self.describe(index)
            )))
        };
        if !self.scale.is_finite() || self.scale == 0.0 {
            return bad(format!(
                "scale must be finite and non-zero, not {}",
                self.scale
            ));
        }
        if !self.offset.is_finite() {
            return bad(format!("offset must be finite, not {}", self.offset));
        }
        match self.data_type {
            DataType::Bitmap
                if self.bits == 0 || u32::from(self.bit) + u32::from(self.bits) > 16 =>
            {
                return bad(format!(
                    "bits {}..{} do not fit in one 16-bit register",
                    self.bit,
                    u32::from(self.bit) + u32::from(self.bits)
                ));
            }
            DataType::Ascii if self.length == 0 || self.length > 125 => {
                return bad(format!(
                    "ASCII length must be 1..=125 registers, not {}",
                    self.length
                ));
            }
            DataType::Ascii | DataType::Datetime if self.scale != 1.0 || self.offset != 0.0 => {
                return bad("text and date fields take no scale or offset".into());
            }
            _ => {}
        }
        if u32::from(self.address) + u32::from(self.registers()) > 0x1_0000 {
            return bad("runs past the last register address 65535".into());
        }
        if let Sentinel::Raw(raw) = self.sentinel {
            let bits = 16 * u32::from(self.data_type.width().max(1));
            if bits < 64 && raw >> bits != 0 {
                return bad(format!(
                    "sentinel {raw:#x} is wider than the field's {bits} bits"
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn sentinel_bits(&self) -> Option<u64> {
        match self.sentinel {
            Sentinel::Default => self.data_type.default_sentinel(),
            Sentinel::Disabled => None,
            Sentinel::Raw(raw) => Some(raw),
        }
    }
}

/// A run of registers read in one request: `registers[k]` is at `start + k`.
#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    pub start: u16,
    pub registers: &'a [u16],
}

/// Decoded values, one entry per field in layout order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// The value; NaN when not available.
    pub values: Vec<f64>,
    /// The exact value of exact-integer fields (see [`FieldSpec::is_exact`]);
    /// `i64::MIN` when not available or when the field is not exact.
    pub integers: Vec<i64>,
    pub valid: Vec<bool>,
}

impl Decoded {
    fn resize(&mut self, n: usize) {
        self.values.resize(n, f64::NAN);
        self.integers.resize(n, i64::MIN);
        self.valid.resize(n, false);
    }

    /// The three columns, to decode into.
    pub fn columns(&mut self) -> Columns<'_> {
        Columns {
            values: &mut self.values,
            integers: &mut self.integers,
            valid: &mut self.valid,
        }
    }
}

/// Where a layout's values go: three columns with one entry per field, in
/// layout order, borrowed from wherever the caller keeps them (a device's
/// latest values, so they are decoded in place, not copied there after).
#[derive(Debug)]
pub struct Columns<'a> {
    pub values: &'a mut [f64],
    pub integers: &'a mut [i64],
    pub valid: &'a mut [bool],
}

impl Columns<'_> {
    /// The same columns, borrowed again (to decode into them and still use them after).
    pub fn reborrow(&mut self) -> Columns<'_> {
        Columns {
            values: self.values,
            integers: self.integers,
            valid: self.valid,
        }
    }

    /// Every field not available: what a field no block holds keeps.
    fn reset(&mut self) {
        self.values.fill(f64::NAN);
        self.integers.fill(NIL_INTEGER);
        self.valid.fill(false);
    }
}

/// The value written in place of an exact integer that is not available.
pub const NIL_INTEGER: i64 = i64::MIN;

/// How a field's raw bits become its value. Fields share these (most are
/// unscaled with the default sentinel), which keeps the per-field loop data
/// small enough to stay in cache for thousands of fields.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    scale: f64,
    offset: f64,
    sentinel: Option<u64>,
    exact: bool,
    bit: u8,
    bits: u8,
}

/// A field as the decoding loops use it.
#[derive(Debug, Clone, Copy)]
struct Kernel {
    field: u32,
    params: u32,
}

/// A kernel bound to where its registers are in one block shape.
#[derive(Debug, Clone, Copy)]
struct Bound {
    at: u32,
    field: u32,
    params: u32,
}

/// Where each field starts in the concatenated blocks, for one block shape.
#[derive(Debug, Default)]
struct Binding {
    shape: Vec<(u16, usize)>,
    /// Per group of the layout, its fields with their offset in the
    /// concatenated blocks (`u32::MAX` where no block holds the field).
    groups: Vec<Vec<Bound>>,
    /// Fields bound, to tell an empty binding from a bound empty layout.
    fields: usize,
    uncovered: Option<usize>,
    scratch: Vec<u16>,
}

/// A compiled register layout: decodes many fields from read blocks in one call.
#[derive(Debug)]
pub struct Layout {
    fields: Vec<FieldSpec>,
    /// Kernels grouped by data type and order, so each group runs a loop
    /// specialised for them.
    groups: Vec<((DataType, WordOrder), Vec<Kernel>)>,
    params: Vec<Params>,
    binding: Mutex<Binding>,
}

impl Layout {
    /// Check every field and group them for decoding.
    pub fn compile(fields: Vec<FieldSpec>) -> Result<Layout> {
        if fields.len() > u32::MAX as usize / 2 {
            return Err(Error::Layout("too many fields".into()));
        }
        for (index, field) in fields.iter().enumerate() {
            field.validate(index)?;
        }
        let mut groups: Vec<((DataType, WordOrder), Vec<Kernel>)> = Vec::new();
        let mut params: Vec<Params> = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let p = Params {
                scale: f.scale,
                offset: f.offset,
                sentinel: f.sentinel_bits(),
                exact: f.is_exact(),
                bit: f.bit,
                bits: f.bits,
            };
            let index = params.iter().position(|q| *q == p).unwrap_or_else(|| {
                params.push(p);
                params.len() - 1
            });
            let kernel = Kernel {
                field: i as u32,
                params: index as u32,
            };
            let key = (f.data_type, f.order);
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, kernels)) => kernels.push(kernel),
                None => groups.push((key, vec![kernel])),
            }
        }
        Ok(Layout {
            fields,
            groups,
            params,
            binding: Mutex::new(Binding::default()),
        })
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn fields(&self) -> &[FieldSpec] {
        &self.fields
    }

    /// Decode every field; a field that no block fully holds is an error.
    pub fn decode(&self, blocks: &[Block<'_>], out: &mut Decoded) -> Result<()> {
        out.resize(self.fields.len());
        self.decode_with(blocks, out.columns(), true)
    }

    /// Decode every field; a field that no block holds (its read failed) is
    /// marked not available instead of failing the whole device.
    pub fn decode_partial(&self, blocks: &[Block<'_>], out: &mut Decoded) -> Result<()> {
        out.resize(self.fields.len());
        self.decode_with(blocks, out.columns(), false)
    }

    /// [`Layout::decode_partial`] into columns of exactly [`Layout::len`]
    /// entries each, kept by the caller.
    pub fn decode_partial_into(&self, blocks: &[Block<'_>], out: Columns<'_>) -> Result<()> {
        let n = self.fields.len();
        if out.values.len() != n || out.integers.len() != n || out.valid.len() != n {
            return Err(Error::Decode(format!(
                "the columns hold {}, {} and {} entries for a layout of {n} fields",
                out.values.len(),
                out.integers.len(),
                out.valid.len()
            )));
        }
        self.decode_with(blocks, out, false)
    }

    fn decode_with(&self, blocks: &[Block<'_>], mut out: Columns<'_>, strict: bool) -> Result<()> {
        // A poisoned lock only means another decode panicked mid-way; the
        // binding is rebuilt from scratch whenever the shape differs, so reuse it.
        let mut binding = self.binding.lock().unwrap_or_else(|p| p.into_inner());
        self.bind(blocks, &mut binding)?;
        if strict {
            if let Some(index) = binding.uncovered {
                let field = &self.fields[index];
                return Err(Error::Decode(format!(
                    "{} needs registers {}..={} but no block holds them all (blocks: {})",
                    field.describe(index),
                    field.address,
                    u32::from(field.address) + u32::from(field.registers()) - 1,
                    describe_blocks(blocks)
                )));
            }
        }
        let Binding {
            groups, scratch, ..
        } = &mut *binding;
        scratch.clear();
        for block in blocks {
            scratch.extend_from_slice(block.registers);
        }
        out.reset();
        for (((data_type, order), _), bound) in self.groups.iter().zip(groups.iter()) {
            let run = Run {
                bound,
                params: &self.params,
                regs: scratch,
            };
            run.decode(*data_type, *order, &mut out);
        }
        Ok(())
    }

    /// ASCII fields as text (trailing NULs and spaces removed); `None` for
    /// other fields and for ASCII fields no block holds.
    pub fn decode_text(&self, blocks: &[Block<'_>]) -> Result<Vec<Option<String>>> {
        check_blocks(blocks)?;
        Ok(self
            .fields
            .iter()
            .map(|f| {
                if f.data_type != DataType::Ascii {
                    return None;
                }
                let regs = find(blocks, f.address, f.length)?;
                let mut bytes = Vec::with_capacity(regs.len() * 2);
                for &r in regs {
                    let [hi, lo] = r.to_be_bytes();
                    if f.order.bytes_swapped() {
                        bytes.extend([lo, hi]);
                    } else {
                        bytes.extend([hi, lo]);
                    }
                }
                let text = String::from_utf8_lossy(&bytes);
                Some(text.trim_end_matches(['\0', ' ']).to_string())
            })
            .collect())
    }

    fn bind(&self, blocks: &[Block<'_>], binding: &mut Binding) -> Result<()> {
        let same_shape = binding.shape.len() == blocks.len()
            && binding
                .shape
                .iter()
                .zip(blocks)
                .all(|(&(s, n), b)| s == b.start && n == b.registers.len());
        if same_shape && binding.fields == self.fields.len() {
            return Ok(());
        }
        check_blocks(blocks)?;
        let mut starts = Vec::with_capacity(blocks.len());
        let mut at = 0usize;
        for block in blocks {
            starts.push(at);
            at += block.registers.len();
        }
        binding.uncovered = None;
        // Blocks from a read plan follow each other without overlapping: the
        // one that may hold a field is then found by bisection, not by
        // trying every block for every field (a device with thousands of
        // points and hundreds of reads).
        let ordered = blocks.windows(2).all(|pair| {
            u32::from(pair[0].start) + pair[0].registers.len() as u32 <= u32::from(pair[1].start)
        });
        let offsets: Vec<u32> = self
            .fields
            .iter()
            .enumerate()
            .map(|(index, field)| {
                let first = u32::from(field.address);
                let end = first + u32::from(field.registers());
                let holds = |b: &Block<'_>| {
                    u32::from(b.start) <= first
                        && end <= u32::from(b.start) + b.registers.len() as u32
                };
                let hit = if ordered {
                    let k = blocks
                        .partition_point(|b| u32::from(b.start) <= first)
                        .checked_sub(1);
                    k.filter(|&k| holds(&blocks[k]))
                        .map(|k| (&blocks[k], &starts[k]))
                } else {
                    blocks.iter().zip(&starts).find(|(b, _)| holds(b))
                };
                match hit {
                    Some((b, &base)) => (base + (first - u32::from(b.start)) as usize) as u32,
                    None => {
                        binding.uncovered.get_or_insert(index);
                        u32::MAX
                    }
                }
            })
            .collect();
        binding.groups = self
            .groups
            .iter()
            .map(|(_, kernels)| {
                kernels
                    .iter()
                    .map(|k| Bound {
                        at: offsets[k.field as usize],
                        field: k.field,
                        params: k.params,
                    })
                    .collect()
            })
            .collect();
        binding.fields = self.fields.len();
        binding.shape = blocks
            .iter()
            .map(|b| (b.start, b.registers.len()))
            .collect();
        Ok(())
    }
}

fn check_blocks(blocks: &[Block<'_>]) -> Result<()> {
    for block in blocks {
        if u32::from(block.start) + block.registers.len() as u32 > 0x1_0000 {
            return Err(Error::Decode(format!(
                "block at {} with {} registers runs past register 65535",
                block.start,
                block.registers.len()
            )));
        }
    }
    Ok(())
}

fn find<'a>(blocks: &[Block<'a>], address: u16, count: u16) -> Option<&'a [u16]> {
    let first = usize::from(address);
    blocks.iter().find_map(|b| {
        let rel = first.checked_sub(usize::from(b.start))?;
        b.registers.get(rel..rel + usize::from(count))
    })
}

fn describe_blocks(blocks: &[Block<'_>]) -> String {
    if blocks.is_empty() {
        return "none".into();
    }
    blocks
        .iter()
        .map(|b| format!("{}+{}", b.start, b.registers.len()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[inline(always)]
fn store(out: &mut Columns<'_>, i: usize, k: &Params, value: Option<Number>) {
    match value {
        Some(Number::Int(v)) if k.exact => {
            out.integers[i] = v;
            out.values[i] = v as f64;
            out.valid[i] = true;
        }
        Some(Number::Int(v)) => {
            out.values[i] = v as f64 * k.scale + k.offset;
            out.valid[i] = true;
        }
        Some(Number::Float(v)) if !v.is_nan() => {
            out.values[i] = v * k.scale + k.offset;
            out.valid[i] = true;
        }
        _ => {}
    }
}

enum Number {
    Int(i64),
    Float(f64),
}

/// One group's decoding loop, specialised by width, word order and conversion.
struct Run<'a> {
    bound: &'a [Bound],
    params: &'a [Params],
    regs: &'a [u16],
}

impl Run<'_> {
    fn decode(&self, data_type: DataType, order: WordOrder, out: &mut Columns<'_>) {
        let run = self;
        match data_type {
            DataType::Int16 => run.words::<1>(order, out, |raw, _| {
                Number::Int(i64::from(raw as u16 as i16))
            }),
            DataType::Uint16 => run.words::<1>(order, out, |raw, _| Number::Int(raw as i64)),
            DataType::Int32 => run.words::<2>(order, out, |raw, _| {
                Number::Int(i64::from(raw as u32 as i32))
            }),
            DataType::Uint32 => run.words::<2>(order, out, |raw, _| Number::Int(raw as i64)),
            DataType::Int64 => run.words::<4>(order, out, |raw, _| Number::Int(raw as i64)),
            // Beyond i64 an exact counter cannot be carried (the cloud protocol's
            // integers are int64): it is not available; a scaled one is a float.
            DataType::Uint64 => run.words::<4>(order, out, |raw, k| match i64::try_from(raw) {
                Ok(v) => Number::Int(v),
                Err(_) if k.exact => Number::Float(f64::NAN),
                Err(_) => Number::Float(raw as f64),
            }),
            DataType::Float32 => run.words::<2>(order, out, |raw, _| {
                Number::Float(f64::from(f32::from_bits(raw as u32)))
            }),
            DataType::Float64 => {
                run.words::<4>(order, out, |raw, _| Number::Float(f64::from_bits(raw)))
            }
            DataType::Bitmap => run.words::<1>(order, out, |raw, k| {
                Number::Int(((raw >> k.bit) & ((1u64 << k.bits) - 1)) as i64)
            }),
            DataType::Datetime => {
                for k in self.bound {
                    let at = k.at as usize;
                    if let Some(regs) = self.regs.get(at..at + 4) {
                        let p = &self.params[k.params as usize];
                        store(out, k.field as usize, p, datetime_ms(regs).map(Number::Int));
                    }
                }
            }
            DataType::Ascii => {} // text: see Layout::decode_text
        }
    }

    #[inline(always)]
    fn words<const W: usize>(
        &self,
        order: WordOrder,
        out: &mut Columns<'_>,
        convert: impl Fn(u64, &Params) -> Number,
    ) {
        match order {
            WordOrder::Abcd => self.ordered::<W, false, false>(out, convert),
            WordOrder::Cdab => self.ordered::<W, true, false>(out, convert),
            WordOrder::Badc => self.ordered::<W, false, true>(out, convert),
            WordOrder::Dcba => self.ordered::<W, true, true>(out, convert),
        }
    }

    #[inline(always)]
    fn ordered<const W: usize, const REVERSED: bool, const SWAPPED: bool>(
        &self,
        out: &mut Columns<'_>,
        convert: impl Fn(u64, &Params) -> Number,
    ) {
        for k in self.bound {
            // An unbound field (u32::MAX) falls outside `regs`: not available.
            let at = k.at as usize;
            let Some(words) = self.regs.get(at..at.wrapping_add(W)) else {
                continue;
            };
            let mut raw = 0u64;
            for j in 0..W {
                let word = if REVERSED { words[W - 1 - j] } else { words[j] };
                let word = if SWAPPED { word.swap_bytes() } else { word };
                raw = (raw << 16) | u64::from(word);
            }
            let p = &self.params[k.params as usize];
            if p.sentinel != Some(raw) {
                store(out, k.field as usize, p, Some(convert(raw, p)));
            }
        }
    }
}

/// IEC 60870-5 time (Schneider register lists): year 2000+(0..127) in register
/// 1; month and day in register 2; hour and minute (bit 7: invalid) in
/// register 3; milliseconds of the minute in register 4. Read as UTC.
fn datetime_ms(regs: &[u16]) -> Option<i64> {
    let year = 2000 + i64::from(regs[0] & 0x7F);
    let month = i64::from((regs[1] >> 8) & 0x0F);
    let day = i64::from(regs[1] & 0x1F);
    let hour = i64::from((regs[2] >> 8) & 0x1F);
    let minute = i64::from(regs[2] & 0x3F);
    let invalid = regs[2] & 0x80 != 0;
    let ms = i64::from(regs[3]);
    if invalid
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || ms > 59_999
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + ms)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_one(field: FieldSpec, regs: &[u16]) -> (f64, i64, bool) {
        let start = field.address;
        let layout = Layout::compile(vec![field]).expect("valid field");
        let mut out = Decoded::default();
        layout
            .decode(
                &[Block {
                    start,
                    registers: regs,
                }],
                &mut out,
            )
            .expect("decodes");
        (out.values[0], out.integers[0], out.valid[0])
    }

    fn with_order(mut f: FieldSpec, order: WordOrder) -> FieldSpec {
        f.order = order;
        f
    }

    #[test]
    fn float32_in_every_order() {
        // 123.456 = 0x42F6E979: A=42 B=F6 C=E9 D=79
        let cases = [
            (WordOrder::Abcd, [0x42F6, 0xE979]),
            (WordOrder::Cdab, [0xE979, 0x42F6]),
            (WordOrder::Badc, [0xF642, 0x79E9]),
            (WordOrder::Dcba, [0x79E9, 0xF642]),
        ];
        for (order, regs) in cases {
            let (v, i, ok) = decode_one(
                with_order(FieldSpec::new(10, DataType::Float32), order),
                &regs,
            );
            assert!(ok, "{order:?}");
            assert_eq!(v as f32, 123.456_f32, "{order:?}");
            assert_eq!(i, NIL_INTEGER);
        }
    }

    #[test]
    fn int64_energy_stays_exact() {
        let value: i64 = (1 << 60) + 7; // not representable in f64
        let regs = [
            (value >> 48) as u16,
            (value >> 32) as u16,
            (value >> 16) as u16,
            value as u16,
        ];
        let (_, i, ok) = decode_one(FieldSpec::new(3203, DataType::Int64), &regs);
        assert!(ok);
        assert_eq!(i, value);
        let swapped = [regs[3], regs[2], regs[1], regs[0]];
        let (_, i, _) = decode_one(
            with_order(FieldSpec::new(0, DataType::Int64), WordOrder::Cdab),
            &swapped,
        );
        assert_eq!(i, value);
    }

    #[test]
    fn sentinels_are_not_available() {
        let cases: [(DataType, &[u16]); 6] = [
            (DataType::Int16, &[0x8000]),
            (DataType::Uint16, &[0xFFFF]),
            (DataType::Uint32, &[0xFFFF, 0xFFFF]),
            (DataType::Float32, &[0xFFC0, 0x0000]),
            (DataType::Float32, &[0x7FC0, 0x0001]), // any NaN
            (DataType::Int64, &[0x8000, 0, 0, 0]),
        ];
        for (t, regs) in cases {
            let (v, i, ok) = decode_one(FieldSpec::new(0, t), regs);
            assert!(!ok && v.is_nan() && i == NIL_INTEGER, "{t:?}");
        }
        let mut custom = FieldSpec::new(0, DataType::Uint16);
        custom.sentinel = Sentinel::Disabled;
        assert_eq!(decode_one(custom.clone(), &[0xFFFF]).1, 0xFFFF);
        custom.sentinel = Sentinel::Raw(0);
        assert!(!decode_one(custom, &[0]).2);
    }

    #[test]
    fn scale_and_offset_make_a_float() {
        let mut f = FieldSpec::new(0, DataType::Int16);
        f.scale = 0.1;
        f.offset = -40.0;
        let (v, i, ok) = decode_one(f, &[(-123i16) as u16]);
        assert!(ok);
        assert!((v - (-52.3)).abs() < 1e-9);
        assert_eq!(i, NIL_INTEGER, "a scaled field is not exact");
    }

    #[test]
    fn bitmap_extracts_bits() {
        let mut f = FieldSpec::new(0, DataType::Bitmap);
        f.bit = 4;
        f.bits = 3;
        assert_eq!(decode_one(f, &[0b0101_0000]).1, 0b101);
    }

    #[test]
    fn datetime_and_invalid_flag() {
        // 2026-11-24 03:39, 12.345 s
        let regs = [26, (11 << 8) | 24, (3 << 8) | 39, 12_345];
        let (_, ms, ok) = decode_one(FieldSpec::new(0, DataType::Datetime), &regs);
        assert!(ok);
        assert_eq!(ms, 1_795_491_552_345);
        let invalid = [26, (11 << 8) | 24, (3 << 8) | 39 | 0x80, 0];
        assert!(!decode_one(FieldSpec::new(0, DataType::Datetime), &invalid).2);
        let feb30 = [26, (2 << 8) | 30, 0, 0];
        assert!(!decode_one(FieldSpec::new(0, DataType::Datetime), &feb30).2);
    }

    #[test]
    fn ascii_text() {
        let mut f = FieldSpec::new(100, DataType::Ascii);
        f.length = 4;
        let layout = Layout::compile(vec![f]).expect("valid");
        let regs = [0x504D, 0x3535, 0x3630, 0x0000]; // "PM5560"
        let text = layout
            .decode_text(&[Block {
                start: 100,
                registers: &regs,
            }])
            .expect("decodes");
        assert_eq!(text, vec![Some("PM5560".to_string())]);
    }

    #[test]
    fn field_outside_blocks_is_a_clear_error() {
        let layout = Layout::compile(vec![FieldSpec::new(10, DataType::Float32)]).expect("valid");
        let regs = [0u16; 11];
        let err = layout
            .decode(
                &[Block {
                    start: 0,
                    registers: &regs,
                }],
                &mut Decoded::default(),
            )
            .expect_err("field straddles the block end");
        assert!(
            err.to_string().contains("field 0 (address 10, FLOAT32)"),
            "{err}"
        );
        let mut out = Decoded::default();
        layout
            .decode_partial(
                &[Block {
                    start: 0,
                    registers: &regs,
                }],
                &mut out,
            )
            .expect("partial decode marks it missing");
        assert!(!out.valid[0]);
    }

    #[test]
    fn binding_follows_a_new_block_shape() {
        let layout = Layout::compile(vec![FieldSpec::new(5, DataType::Uint16)]).expect("valid");
        let mut out = Decoded::default();
        layout
            .decode(
                &[Block {
                    start: 0,
                    registers: &[0, 0, 0, 0, 0, 7],
                }],
                &mut out,
            )
            .expect("ok");
        assert_eq!(out.integers[0], 7);
        layout
            .decode(
                &[Block {
                    start: 4,
                    registers: &[0, 9],
                }],
                &mut out,
            )
            .expect("ok");
        assert_eq!(out.integers[0], 9);
    }

    #[test]
    fn fields_are_found_in_many_blocks_in_any_order() {
        // Every other register pair is a FLOAT32 field; blocks of 6 registers
        // with a gap of 2 between them: fields in a gap, or across a block's
        // end, are not available.
        let fields: Vec<_> = (0..60)
            .map(|k| FieldSpec::new(2 * k, DataType::Uint32))
            .collect();
        let layout = Layout::compile(fields).expect("valid");
        let image: Vec<u16> = (0..120).collect();
        let starts = [
            0u16, 8, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112,
        ];
        let mut blocks: Vec<Block<'_>> = starts
            .iter()
            .map(|&start| Block {
                start,
                registers: &image[usize::from(start)..usize::from(start) + 6],
            })
            .collect();
        let expected: Vec<bool> = (0..60).map(|k| (2 * k) % 8 < 6).collect();
        let mut out = Decoded::default();
        layout.decode_partial(&blocks, &mut out).expect("decodes");
        assert_eq!(out.valid, expected);
        assert_eq!(out.integers[5], (10 << 16) | 11);
        // The same blocks out of order (and one overlapping another): the
        // same fields, found the slow way.
        blocks.reverse();
        blocks.push(Block {
            start: 2,
            registers: &image[2..4],
        });
        layout.decode_partial(&blocks, &mut out).expect("decodes");
        assert_eq!(out.valid, expected);
        assert_eq!(out.integers[5], (10 << 16) | 11);
        // Into columns the caller keeps; columns of the wrong size are refused.
        let (mut values, mut integers, mut valid) = (vec![0.0; 60], vec![0; 60], vec![true; 60]);
        let columns = Columns {
            values: &mut values,
            integers: &mut integers,
            valid: &mut valid,
        };
        layout
            .decode_partial_into(&blocks, columns)
            .expect("decodes");
        assert_eq!(valid, expected);
        assert!(values[3].is_nan() && integers[3] == NIL_INTEGER);
        let short = Columns {
            values: &mut values[..59],
            integers: &mut integers,
            valid: &mut valid,
        };
        assert!(layout.decode_partial_into(&blocks, short).is_err());
    }

    #[test]
    fn invalid_fields_are_named() {
        let mut f = FieldSpec::new(65535, DataType::Float32);
        let err = Layout::compile(vec![FieldSpec::new(0, DataType::Int16), f.clone()])
            .expect_err("past 65535");
        assert!(
            err.to_string().contains("field 1 (address 65535, FLOAT32)"),
            "{err}"
        );
        f.address = 0;
        f.scale = f64::NAN;
        assert!(Layout::compile(vec![f]).is_err());
    }
}
