//! The core's one error type.
//!
//! Every fallible core function returns [`Result`]. The binding maps each
//! variant to one Python exception class (see `python/errors.rs`), so the
//! variants are the exception tree users see.

use thiserror::Error;

/// What went wrong in the core, with enough context to fix the input.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// A register layout (field definitions) is invalid; names the field.
    #[error("register layout: {0}")]
    Layout(String),
    /// Register data does not fit the layout (short block, address outside every block...).
    #[error("register data: {0}")]
    Decode(String),
    /// A sample ring was used with arguments that do not fit it.
    #[error("sample ring: {0}")]
    Ring(String),
    /// A data batch could not be encoded or is not a valid spec §7 batch.
    #[error("batch: {0}")]
    Batch(String),
    /// An alarm definition or the readings given to evaluate it are invalid.
    #[error("alarm: {0}")]
    Alarm(String),
}

/// Result of every fallible core function.
pub type Result<T> = std::result::Result<T, Error>;
