//! The register types and their facts, defined once.
//!
//! How many registers a type takes, whether it is an integer (exact, never
//! rounded through f64), whether it is signed, and the raw pattern device
//! register lists use for "not available": the decoder, the acquisition
//! engine, the simulator's encoder and the Python side (through
//! `panelfast._native.REGISTER_TYPES`) all read these facts from here.

/// How a field's registers encode its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Float32,
    Float64,
    /// `bits` bits from bit `bit` of one register, as an unsigned integer.
    Bitmap,
    /// `length` registers of two characters each (device identification).
    Ascii,
    /// IEC 60870-5 date and time in 4 registers, as Schneider meters publish it.
    Datetime,
}

/// What a register type is, as one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeFacts {
    /// Its name in device model files (`"FLOAT32"`).
    pub name: &'static str,
    /// Registers a value occupies; 0 for ASCII, whose field gives its length.
    pub registers: u16,
    /// An integer (bits of a register for BITMAP).
    pub integer: bool,
    /// Unscaled, its values are exact integers, carried as i64 and never
    /// rounded through f64: the integer types, and DATETIME (ms since the epoch).
    pub exact: bool,
    /// A two's-complement integer.
    pub signed: bool,
    /// The usual "not available" raw pattern (big-endian bits), if the type has one.
    pub sentinel: Option<u64>,
}

const fn facts(
    name: &'static str,
    registers: u16,
    integer: bool,
    signed: bool,
    sentinel: Option<u64>,
) -> TypeFacts {
    TypeFacts {
        name,
        registers,
        integer,
        exact: integer,
        signed,
        sentinel,
    }
}

impl DataType {
    /// Every type, in the order model files and the documentation list them.
    pub const ALL: [DataType; 11] = [
        DataType::Int16,
        DataType::Uint16,
        DataType::Int32,
        DataType::Uint32,
        DataType::Int64,
        DataType::Uint64,
        DataType::Float32,
        DataType::Float64,
        DataType::Bitmap,
        DataType::Ascii,
        DataType::Datetime,
    ];

    /// The facts of this type: the one table every part reads.
    pub const fn facts(self) -> TypeFacts {
        match self {
            DataType::Int16 => facts("INT16", 1, true, true, Some(0x8000)),
            DataType::Uint16 => facts("UINT16", 1, true, false, Some(0xFFFF)),
            DataType::Int32 => facts("INT32", 2, true, true, Some(0x8000_0000)),
            DataType::Uint32 => facts("UINT32", 2, true, false, Some(0xFFFF_FFFF)),
            DataType::Int64 => facts("INT64", 4, true, true, Some(0x8000_0000_0000_0000)),
            DataType::Uint64 => facts("UINT64", 4, true, false, Some(u64::MAX)),
            // The quiet NaNs meters write.
            DataType::Float32 => facts("FLOAT32", 2, false, true, Some(0xFFC0_0000)),
            DataType::Float64 => facts("FLOAT64", 4, false, true, Some(0xFFF8_0000_0000_0000)),
            // Every pattern of a bit field is a value.
            DataType::Bitmap => facts("BITMAP", 1, true, false, None),
            DataType::Ascii => facts("ASCII", 0, false, false, None),
            // Its "not available" is a flag inside the value, not a pattern.
            DataType::Datetime => TypeFacts {
                exact: true,
                ..facts("DATETIME", 4, false, false, None)
            },
        }
    }

    /// Parse a model file's type name (`"FLOAT32"`).
    pub fn from_name(name: &str) -> Option<DataType> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub const fn name(self) -> &'static str {
        self.facts().name
    }

    /// Registers a value of this type occupies (ASCII: 0, see its `length`).
    pub const fn width(self) -> u16 {
        self.facts().registers
    }

    /// Whether its values are integers (exact when unscaled).
    pub const fn is_integer(self) -> bool {
        self.facts().integer
    }

    /// Whether its unscaled values are exact integers (see [`TypeFacts::exact`]).
    pub const fn is_exact(self) -> bool {
        self.facts().exact
    }

    pub const fn is_signed(self) -> bool {
        self.facts().signed
    }

    /// The "not available" pattern device register lists use for this type.
    pub const fn default_sentinel(self) -> Option<u64> {
        self.facts().sentinel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for t in DataType::ALL {
            assert_eq!(DataType::from_name(t.name()), Some(t));
        }
        assert_eq!(DataType::from_name("FLOAT33"), None);
    }

    #[test]
    fn integer_sentinels_are_the_extremes_of_their_width() {
        for t in DataType::ALL.into_iter().filter(|t| t.is_integer()) {
            let bits = 16 * u32::from(t.width());
            let Some(sentinel) = t.default_sentinel() else {
                assert_eq!(t, DataType::Bitmap);
                continue;
            };
            // Signed: the minimum (only the sign bit); unsigned: the maximum.
            let expected = if t.is_signed() {
                1u64 << (bits - 1)
            } else {
                u64::MAX >> (64 - bits)
            };
            assert_eq!(sentinel, expected, "{}", t.name());
        }
    }
}
