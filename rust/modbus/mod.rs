//! Modbus acquisition: request planning, the client engine and its diagnostics.
//!
//! The [`Engine`] polls many devices over Modbus TCP, RTU on serial ports and
//! RTU framing over TCP (serial-to-Ethernet converters), on its own tokio
//! runtime. Each link (a TCP endpoint, a serial bus) is one task holding one
//! connection and one serialised request queue; several unit ids behind one
//! endpoint share it. A dead or slow device therefore never delays a device on
//! another link, and on a shared bus costs at most its timeout per cycle.
//!
//! Every request ends in one of two layers, as in tokio-modbus
//! ([`Outcome`]): the outer `Err(`[`LinkError`]`)` when no valid answer came
//! back (timeout, transport, protocol), else the device's answer: data, or an
//! exception response (`Ok(Err(`[`ExceptionCode`]`))`: it is alive and said
//! no). [`RequestError`] keeps the same split when a failure is reported.

mod config;
mod connection;
mod diag;
mod engine;
mod link;
pub mod plan;
pub mod schedule;

use std::fmt;

pub use config::{DeviceConfig, Parity, PointConfig, SerialConfig, Transport};
pub use diag::{
    DeviceDiagnostics, DeviceState, ErrorRecord, RegisterRange, RttStats, RTT_BUCKET_BOUNDS_US,
};
pub use engine::{Engine, EngineError, Snapshot};
pub use link::RawBlock;
pub use plan::{Plan, PlanLimits, PointSpan, Read, ReadFunction};
pub use tokio_modbus::ExceptionCode;

/// A zero-based data address as on the wire (PDU address): register, coil or
/// discrete input number. "Register 40001" of a vendor's table is address 0.
pub type Address = u16;

/// A number of registers or bits in one request: at most 125 registers or
/// 2,000 bits per read, 123 registers or 1,968 bits per write.
pub type Quantity = u16;

/// The unit identifier (slave id) of a device: 1..=247 on a serial bus; over
/// TCP usually 1 or 255, or the serial address behind a gateway.
pub type UnitId = u8;

/// One 16-bit register value.
pub type Word = u16;

/// Unix time in milliseconds.
pub type UnixMs = i64;

/// A write, function codes 5, 6, 15 and 16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteRequest {
    /// 0x05 Write Single Coil.
    SingleCoil(Address, bool),
    /// 0x06 Write Single Register.
    SingleRegister(Address, Word),
    /// 0x0F Write Multiple Coils (1..=1968).
    MultipleCoils(Address, Vec<bool>),
    /// 0x10 Write Multiple Registers (1..=123).
    MultipleRegisters(Address, Vec<Word>),
}

impl WriteRequest {
    /// Build a write from its function code and values (registers, or 0/1 for coils).
    pub fn new(function: u8, address: Address, values: &[u16]) -> Result<WriteRequest, String> {
        let single = |what: &str| -> Result<u16, String> {
            match values {
                [value] => Ok(*value),
                _ => Err(format!(
                    "function {function} writes one {what}, got {} values",
                    values.len()
                )),
            }
        };
        let bit = |value: u16| match value {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(format!("a coil is written 0 or 1, not {other}")),
        };
        let fits = |max: usize| -> Result<(), String> {
            if values.is_empty() || values.len() > max {
                return Err(format!(
                    "function {function} writes 1..={max} items, got {}",
                    values.len()
                ));
            }
            if usize::from(address) + values.len() > 0x1_0000 {
                return Err(format!("the write runs past address 65535 from {address}"));
            }
            Ok(())
        };
        match function {
            5 => Ok(WriteRequest::SingleCoil(address, bit(single("coil")?)?)),
            6 => Ok(WriteRequest::SingleRegister(address, single("register")?)),
            15 => {
                fits(1968)?;
                let bits = values.iter().map(|&v| bit(v)).collect::<Result<_, _>>()?;
                Ok(WriteRequest::MultipleCoils(address, bits))
            }
            16 => {
                fits(123)?;
                Ok(WriteRequest::MultipleRegisters(address, values.to_vec()))
            }
            other => Err(format!(
                "function {other} is not a write: use 5, 6, 15 or 16"
            )),
        }
    }
}

/// The outer layer: no valid answer came back, the device may be gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    /// No complete answer within the device's timeout.
    Timeout,
    /// The connection could not be made, was closed or reset, or is waiting
    /// for its next reconnection attempt.
    Transport(String),
    /// An answer came back that does not match the request (transaction id,
    /// unit id, function code, length): the link is resynchronised.
    Protocol(String),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Timeout => f.write_str("no answer within the timeout"),
            LinkError::Transport(message) => write!(f, "transport error: {message}"),
            LinkError::Protocol(message) => write!(f, "protocol error: {message}"),
        }
    }
}

/// A request's result in two layers, like `tokio_modbus::Result`: the outer
/// `Err` when no valid answer came back; inside, the device's answer, which
/// is the data or an exception response.
pub type Outcome<T> = Result<Result<T, ExceptionCode>, LinkError>;

/// Why a request got no data, keeping the two layers apart: the device said
/// no ([`RequestError::Exception`]), or it could not be heard ([`RequestError::Link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The device answered with an exception response.
    Exception(ExceptionCode),
    /// No valid answer came back.
    Link(LinkError),
}

impl RequestError {
    /// Flatten an [`Outcome`] for reporting.
    pub fn from_outcome<T>(outcome: Outcome<T>) -> Result<T, RequestError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(code)) => Err(RequestError::Exception(code)),
            Err(link) => Err(RequestError::Link(link)),
        }
    }

    /// The kind as diagnostics name it: `exception`, `timeout`, `transport`, `protocol`.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestError::Exception(_) => "exception",
            RequestError::Link(LinkError::Timeout) => "timeout",
            RequestError::Link(LinkError::Transport(_)) => "transport",
            RequestError::Link(LinkError::Protocol(_)) => "protocol",
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Exception(code) => write!(
                f,
                "exception {:#04x} {}",
                u8::from(*code),
                exception_name(*code)
            ),
            RequestError::Link(link) => write!(f, "{link}"),
        }
    }
}

impl std::error::Error for RequestError {}

/// The name of an exception code, as the Modbus specification spells it.
pub fn exception_name(code: ExceptionCode) -> String {
    match code {
        ExceptionCode::IllegalFunction => "IllegalFunction".into(),
        ExceptionCode::IllegalDataAddress => "IllegalDataAddress".into(),
        ExceptionCode::IllegalDataValue => "IllegalDataValue".into(),
        ExceptionCode::ServerDeviceFailure => "ServerDeviceFailure".into(),
        ExceptionCode::Acknowledge => "Acknowledge".into(),
        ExceptionCode::ServerDeviceBusy => "ServerDeviceBusy".into(),
        ExceptionCode::MemoryParityError => "MemoryParityError".into(),
        ExceptionCode::GatewayPathUnavailable => "GatewayPathUnavailable".into(),
        ExceptionCode::GatewayTargetDevice => "GatewayTargetDevice".into(),
        ExceptionCode::Custom(code) => format!("Exception{code:#04x}"),
    }
}

/// Unix time now, in milliseconds.
pub fn unix_ms() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as UnixMs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_checked() {
        assert_eq!(
            WriteRequest::new(6, 10, &[7]),
            Ok(WriteRequest::SingleRegister(10, 7))
        );
        assert_eq!(
            WriteRequest::new(5, 1, &[1]),
            Ok(WriteRequest::SingleCoil(1, true))
        );
        assert_eq!(
            WriteRequest::new(15, 0, &[1, 0]),
            Ok(WriteRequest::MultipleCoils(0, vec![true, false]))
        );
        assert!(WriteRequest::new(6, 0, &[1, 2]).is_err());
        assert!(WriteRequest::new(5, 0, &[2])
            .unwrap_err()
            .contains("0 or 1"));
        assert!(WriteRequest::new(16, 0, &[0; 124]).is_err());
        assert!(WriteRequest::new(16, 65535, &[0, 0]).is_err());
        assert!(WriteRequest::new(3, 0, &[0])
            .unwrap_err()
            .contains("not a write"));
    }

    #[test]
    fn exceptions_are_named_with_their_code() {
        let err = RequestError::Exception(ExceptionCode::IllegalDataAddress);
        assert_eq!(err.to_string(), "exception 0x02 IllegalDataAddress");
        let outcome: Outcome<()> = Ok(Err(ExceptionCode::IllegalDataAddress));
        assert_eq!(RequestError::from_outcome(outcome), Err(err));
        let silent: Outcome<()> = Err(LinkError::Timeout);
        assert_eq!(
            RequestError::from_outcome(silent).unwrap_err().to_string(),
            "no answer within the timeout"
        );
        assert_eq!(
            exception_name(ExceptionCode::GatewayTargetDevice),
            "GatewayTargetDevice"
        );
        assert_eq!(RequestError::Link(LinkError::Timeout).kind(), "timeout");
    }
}
