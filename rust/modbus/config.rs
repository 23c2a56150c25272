//! What the engine is told: how each device is reached and what to read.
//!
//! Plain data, depended on by the connection, the links and the engine, and
//! depending on none of them.

use std::time::Duration;

use super::plan::{PlanLimits, ReadFunction};
use super::UnitId;
use crate::decode::FieldSpec;

/// Parity of a serial line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// A serial port's line settings. Devices on one port share them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialConfig {
    pub path: String,
    pub baud_rate: u32,
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    /// 7 or 8.
    pub data_bits: u8,
}

/// How a device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// Modbus TCP (MBAP framing).
    Tcp { host: String, port: u16 },
    /// RTU framing over a TCP socket (serial-to-Ethernet converters).
    RtuOverTcp { host: String, port: u16 },
    /// Modbus RTU on a serial port.
    Rtu(SerialConfig),
}

/// One point to read: a decoder field and the function code that reads it.
/// For coils and discrete inputs the field's address is the bit's, and its
/// value is 0 or 1 (the field's type must be an integer type).
#[derive(Debug, Clone, PartialEq)]
pub struct PointConfig {
    pub function: ReadFunction,
    pub field: FieldSpec,
    /// Identification (name, model, serial number): constant while the
    /// device stays connected, so read once per connection, not every poll.
    pub identification: bool,
}

impl PointConfig {
    /// A point read every poll.
    pub fn new(function: ReadFunction, field: FieldSpec) -> PointConfig {
        PointConfig {
            function,
            field,
            identification: false,
        }
    }
}

/// A device to poll.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceConfig {
    pub id: String,
    pub transport: Transport,
    pub unit_id: UnitId,
    /// Poll period; cycles start when `unix time % period == 0`.
    pub period: Duration,
    /// How long one request may wait for its answer.
    pub timeout: Duration,
    /// Further attempts of a read that got no answer, while the device is
    /// healthy. Not on a serial bus shared with other devices: there a silent
    /// device must cost the others at most one timeout per cycle.
    pub retries: u8,
    pub limits: PlanLimits,
    pub points: Vec<PointConfig>,
}

impl SerialConfig {
    /// The silence between two frames: 3.5 character times, and a fixed
    /// 1.75 ms above 19,200 baud (Modbus over serial line §2.5.1.1).
    pub fn frame_gap(&self) -> Duration {
        if self.baud_rate > 19_200 {
            return Duration::from_micros(1750);
        }
        let parity = u32::from(self.parity != Parity::None);
        let bits = 1 + u32::from(self.data_bits) + parity + u32::from(self.stop_bits);
        Duration::from_micros(u64::from(bits) * 3_500_000 / u64::from(self.baud_rate.max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serial(baud_rate: u32, parity: Parity) -> SerialConfig {
        SerialConfig {
            path: "/dev/null".into(),
            baud_rate,
            parity,
            stop_bits: 1,
            data_bits: 8,
        }
    }

    #[test]
    fn frame_gap_is_three_and_a_half_characters() {
        // 9600 8E1: 11 bits a character, 3.5 × 11 / 9600 s.
        assert_eq!(
            serial(9600, Parity::Even).frame_gap(),
            Duration::from_micros(4010)
        );
        assert_eq!(
            serial(9600, Parity::None).frame_gap(),
            Duration::from_micros(3645)
        );
        assert_eq!(
            serial(115_200, Parity::Even).frame_gap(),
            Duration::from_micros(1750)
        );
    }
}
