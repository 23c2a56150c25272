//! Values → registers: the inverse of [`crate::decode`].
//!
//! A simulated device writes each measurement into its register image the way
//! a real device of its model would, so the gateway's decoder is exercised on
//! every type and byte order. The value handed in is in the measurement's own
//! unit; `raw = (value − offset) / scale` is what the registers carry.

use crate::decode::{DataType, FieldSpec, WordOrder};

/// A decoded value as the gateway should see it after reading the registers.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Integer fields without scale or offset, BITMAP, DATETIME (ms since the epoch).
    Int(i64),
    /// Floats, and scaled integers (`raw × scale + offset`).
    Float(f64),
    /// ASCII fields.
    Text(String),
    /// The field's "not available" pattern was served.
    Unavailable,
}

/// Encode `value` (in the field's unit) into `out` (its registers, `field.registers()` long)
/// and return the value a correct decoder reads back.
///
/// Integers are rounded to the nearest raw step and clamped to the type's range,
/// floats rounded to the type's precision: the returned value is exact.
pub fn encode_number(field: &FieldSpec, value: f64, out: &mut [u16]) -> Value {
    let raw = (value - field.offset) / field.scale;
    let exact = field.is_exact();
    let (bits, width, back): (u64, usize, Value) = match field.data_type {
        DataType::Float32 => {
            let v = raw as f32;
            let back = Value::Float(f64::from(v) * field.scale + field.offset);
            (u64::from(v.to_bits()), 2, back)
        }
        DataType::Float64 => (
            raw.to_bits(),
            4,
            Value::Float(raw * field.scale + field.offset),
        ),
        DataType::Bitmap => {
            let mask = (1u64 << field.bits) - 1;
            let v = if raw.is_nan() {
                0
            } else {
                raw.round().clamp(0.0, mask as f64) as u64
            };
            // A bitmap field owns only its bits: the caller ORs them into the register.
            out[0] |= (v << field.bit) as u16;
            return Value::Int(v as i64);
        }
        DataType::Ascii | DataType::Datetime => {
            return Value::Float(f64::NAN); // not numbers: see encode_text, encode_datetime
        }
        t => {
            // The type's range from its facts; exact values are carried as
            // i64 by the decoder, so UINT64 stays within it.
            let width = usize::from(t.width());
            let bits = 16 * u32::from(t.width());
            let (lo, hi): (i128, i128) = if t.is_signed() {
                (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
            } else {
                (0, ((1i128 << bits) - 1).min(i64::MAX.into()))
            };
            let r = if raw.is_nan() { 0 } else { raw.round() as i128 };
            // Keep off the "not available" sentinels: signed types mark it
            // with their minimum, unsigned with their maximum.
            let (lo, hi) = if lo < 0 { (lo + 1, hi) } else { (lo, hi - 1) };
            let r = r.clamp(lo, hi) as i64;
            let bits = (r as u64) & width_mask(width);
            let back = if exact {
                Value::Int(r)
            } else {
                Value::Float(r as f64 * field.scale + field.offset)
            };
            (bits, width, back)
        }
    };
    write_bits(bits, width, field.order, out);
    back
}

fn width_mask(width: usize) -> u64 {
    if width >= 4 {
        u64::MAX
    } else {
        (1u64 << (16 * width)) - 1
    }
}

/// Spread big-endian `bits` over `width` registers in `order`.
pub fn write_bits(bits: u64, width: usize, order: WordOrder, out: &mut [u16]) {
    let reversed = matches!(order, WordOrder::Cdab | WordOrder::Dcba);
    let swapped = matches!(order, WordOrder::Badc | WordOrder::Dcba);
    for k in 0..width {
        // k = 0 is the most significant word.
        let word = (bits >> (16 * (width - 1 - k))) as u16;
        let word = if swapped { word.swap_bytes() } else { word };
        let at = if reversed { width - 1 - k } else { k };
        out[at] = word;
    }
}

/// Write the field's "not available" pattern; false if it has none (BITMAP,
/// ASCII, a disabled sentinel).
pub fn encode_unavailable(field: &FieldSpec, out: &mut [u16]) -> bool {
    if field.data_type == DataType::Datetime {
        // The invalid flag of the hour-and-minute register.
        out[..4].copy_from_slice(&[0, 0x0101, 0x0080, 0]);
        return true;
    }
    // A bitmap field owns only some bits of its register: it has no pattern of its own.
    match field.sentinel_bits() {
        Some(bits) if field.data_type != DataType::Bitmap => {
            write_bits(bits, usize::from(field.registers()), field.order, out);
            true
        }
        _ => false,
    }
}

/// ASCII: two characters per register, high byte first (BADC/DCBA: low byte
/// first), NUL-padded; text longer than the field is cut.
pub fn encode_text(field: &FieldSpec, text: &str, out: &mut [u16]) -> Value {
    let swapped = matches!(field.order, WordOrder::Badc | WordOrder::Dcba);
    let capacity = usize::from(field.length) * 2;
    let bytes: Vec<u8> = text.bytes().filter(u8::is_ascii).take(capacity).collect();
    for (k, reg) in out.iter_mut().enumerate() {
        let hi = bytes.get(2 * k).copied().unwrap_or(0);
        let lo = bytes.get(2 * k + 1).copied().unwrap_or(0);
        *reg = if swapped {
            u16::from_be_bytes([lo, hi])
        } else {
            u16::from_be_bytes([hi, lo])
        };
    }
    let shown = String::from_utf8_lossy(&bytes);
    Value::Text(shown.trim_end_matches(['\0', ' ']).to_string())
}

/// DATETIME (IEC 60870-5, as Schneider meters publish it), UTC, for `t_ms`
/// since the epoch; years outside 2000..=2127 cannot be represented and are
/// written with the invalid flag.
pub fn encode_datetime(t_ms: i64, out: &mut [u16]) -> Value {
    let days = t_ms.div_euclid(86_400_000);
    let ms_of_day = t_ms.rem_euclid(86_400_000);
    let (year, month, day) = civil_from_days(days);
    let hour = ms_of_day / 3_600_000;
    let minute = (ms_of_day / 60_000) % 60;
    let ms = ms_of_day % 60_000;
    if !(2000..=2127).contains(&year) {
        out[..4].copy_from_slice(&[0, 0x0101, 0x0080, 0]);
        return Value::Float(f64::NAN);
    }
    // Day of week in bits 5..7 of register 2 (1 = Monday), as the meters do.
    let weekday = (days + 3).rem_euclid(7) + 1;
    out[0] = (year - 2000) as u16;
    out[1] = ((month as u16) << 8) | ((weekday as u16) << 5) | day as u16;
    out[2] = ((hour as u16) << 8) | minute as u16;
    out[3] = ms as u16;
    Value::Int(t_ms)
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{Block, Decoded, Layout, Sentinel};

    fn decode(field: FieldSpec, regs: &[u16]) -> (f64, i64, bool) {
        let layout = Layout::compile(vec![field.clone()]).expect("valid field");
        let mut out = Decoded::default();
        layout
            .decode(
                &[Block {
                    start: field.address,
                    registers: regs,
                }],
                &mut out,
            )
            .expect("decodes");
        (out.values[0], out.integers[0], out.valid[0])
    }

    fn field(t: DataType, order: WordOrder) -> FieldSpec {
        let mut f = FieldSpec::new(10, t);
        f.order = order;
        f
    }

    #[test]
    fn every_number_type_and_order_round_trips_through_the_decoder() {
        let cases = [
            (DataType::Int16, -1234.0),
            (DataType::Uint16, 54321.0),
            (DataType::Int32, -123_456_789.0),
            (DataType::Uint32, 3_000_000_000.0),
            (DataType::Int64, -9_007_199_254_740_000.0),
            (DataType::Uint64, 123_456_789_012.0),
            (DataType::Float32, 230.125),
            (DataType::Float64, 49.987_654_321),
        ];
        for (order, _) in WordOrder::ALL {
            for (t, v) in cases {
                let f = field(t, order);
                let mut regs = vec![0u16; usize::from(f.registers())];
                let back = encode_number(&f, v, &mut regs);
                let (value, integer, valid) = decode(f, &regs);
                assert!(valid, "{t:?} {order:?}");
                match back {
                    Value::Int(i) => assert_eq!(i, integer, "{t:?} {order:?}"),
                    Value::Float(x) => assert_eq!(x, value, "{t:?} {order:?}"),
                    Value::Text(_) | Value::Unavailable => panic!("a number"),
                }
                assert_eq!(value, v, "{t:?} {order:?}");
            }
        }
    }

    #[test]
    fn known_layouts() {
        let mut regs = [0u16; 2];
        encode_number(&field(DataType::Float32, WordOrder::Abcd), 1.0, &mut regs);
        assert_eq!(regs, [0x3F80, 0x0000]);
        encode_number(&field(DataType::Float32, WordOrder::Cdab), 1.0, &mut regs);
        assert_eq!(regs, [0x0000, 0x3F80]);
        encode_number(&field(DataType::Float32, WordOrder::Badc), 1.0, &mut regs);
        assert_eq!(regs, [0x803F, 0x0000]);
        encode_number(&field(DataType::Float32, WordOrder::Dcba), 1.0, &mut regs);
        assert_eq!(regs, [0x0000, 0x803F]);
        let mut regs = [0u16; 4];
        encode_number(
            &field(DataType::Int64, WordOrder::Cdab),
            0x0001_0002_0003_0004_i64 as f64,
            &mut regs,
        );
        assert_eq!(regs, [4, 3, 2, 1]);
    }

    #[test]
    fn scaled_integers_round_to_the_raw_step_and_clamp() {
        let mut f = field(DataType::Int16, WordOrder::Abcd);
        f.scale = 0.1;
        let mut regs = [0u16; 1];
        assert_eq!(
            encode_number(&f, 230.04, &mut regs),
            Value::Float(2300.0 * 0.1)
        );
        assert_eq!(regs, [2300]);
        // Clamped inside the range, never onto the sentinel 0x8000.
        encode_number(&f, -1e9, &mut regs);
        assert_eq!(regs, [0x8001]);
    }

    #[test]
    fn bitmap_owns_only_its_bits() {
        let mut f = field(DataType::Bitmap, WordOrder::Abcd);
        f.bit = 3;
        f.bits = 2;
        let mut regs = [0b1u16];
        assert_eq!(encode_number(&f, 2.0, &mut regs), Value::Int(2));
        assert_eq!(regs, [0b1_0001]);
        assert_eq!(decode(f, &regs).1, 2);
    }

    #[test]
    fn unavailable_patterns_decode_as_not_available() {
        for t in DataType::ALL {
            for (order, _) in WordOrder::ALL {
                let mut f = field(t, order);
                f.length = 2;
                let mut regs = vec![0u16; usize::from(f.registers())];
                if encode_unavailable(&f, &mut regs) {
                    assert!(!decode(f, &regs).2, "{t:?} {order:?}");
                } else {
                    assert!(matches!(t, DataType::Bitmap | DataType::Ascii));
                }
            }
        }
        let mut f = field(DataType::Uint16, WordOrder::Abcd);
        f.sentinel = Sentinel::Raw(0x7FFF);
        let mut regs = [0u16];
        assert!(encode_unavailable(&f, &mut regs));
        assert_eq!(regs, [0x7FFF]);
        f.sentinel = Sentinel::Disabled;
        assert!(!encode_unavailable(&f, &mut regs));
    }

    #[test]
    fn datetime_round_trips() {
        let f = field(DataType::Datetime, WordOrder::Abcd);
        for t in [
            1_795_491_552_345i64,
            946_684_800_000,
            1_709_164_800_000 + 86_399_999,
        ] {
            let mut regs = [0u16; 4];
            assert_eq!(encode_datetime(t, &mut regs), Value::Int(t));
            let (_, ms, ok) = decode(f.clone(), &regs);
            assert!(ok);
            assert_eq!(ms, t);
        }
        let mut regs = [0u16; 4];
        encode_datetime(0, &mut regs); // 1970: not representable
        assert!(!decode(f, &regs).2);
    }

    #[test]
    fn ascii_round_trips_both_byte_orders() {
        for order in [WordOrder::Abcd, WordOrder::Badc] {
            let mut f = field(DataType::Ascii, order);
            f.length = 4;
            let mut regs = [0xFFFFu16; 4];
            assert_eq!(
                encode_text(&f, "PM5560", &mut regs),
                Value::Text("PM5560".into())
            );
            let layout = Layout::compile(vec![f]).expect("valid");
            let text = layout
                .decode_text(&[Block {
                    start: 10,
                    registers: &regs,
                }])
                .expect("decodes");
            assert_eq!(text, vec![Some("PM5560".to_string())]);
        }
    }
}
