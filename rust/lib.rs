//! The Rust core of panelfast: the gateway's hot path.
//!
//! Everything here is plain Rust: `cargo test` runs it without Python. The
//! PyO3 binding lives in [`python`] behind the `python` feature and only
//! converts arguments and errors; it never holds logic of its own.
//!
//! Dependencies point one way: `python` → the domain modules → [`error`].

pub mod alarm;
pub mod batch;
pub mod datatype;
pub mod decode;
pub mod error;
pub mod modbus;
pub mod ring;
pub mod series;
pub mod simulator;

#[cfg(feature = "python")]
mod python;

pub use error::{Error, Result};
