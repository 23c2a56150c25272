//! The one mapping from core errors to Python exceptions.
//!
//! ```text
//! PanelfastError (Exception)
//! ├── LayoutError         a register layout is invalid
//! ├── DecodeError         register data does not fit the layout
//! ├── RingError           a sample ring was misused
//! ├── BatchError          a batch cannot be encoded, or is malformed
//! └── AlarmError          an alarm, or the readings given to it, are invalid
//! ```
//!
//! `panelfast.exceptions` re-exports these and roots the Python-side
//! exceptions (configuration, cloud...) at the same `PanelfastError`.

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

use crate::Error;

create_exception!(
    _native,
    PanelfastError,
    PyException,
    "Base of every panelfast error."
);
create_exception!(
    _native,
    LayoutError,
    PanelfastError,
    "A register layout is invalid."
);
create_exception!(
    _native,
    DecodeError,
    PanelfastError,
    "Register data does not fit the layout."
);
create_exception!(
    _native,
    RingError,
    PanelfastError,
    "A sample ring was used with arguments that do not fit it."
);
create_exception!(
    _native,
    BatchError,
    PanelfastError,
    "A data batch cannot be encoded, or is not a valid batch."
);
create_exception!(
    _native,
    AlarmError,
    PanelfastError,
    "An alarm definition, or the readings given to evaluate it, are invalid."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PanelfastError", py.get_type::<PanelfastError>())?;
    m.add("LayoutError", py.get_type::<LayoutError>())?;
    m.add("DecodeError", py.get_type::<DecodeError>())?;
    m.add("RingError", py.get_type::<RingError>())?;
    m.add("BatchError", py.get_type::<BatchError>())?;
    m.add("AlarmError", py.get_type::<AlarmError>())?;
    Ok(())
}

impl From<Error> for PyErr {
    fn from(err: Error) -> PyErr {
        let message = err.to_string();
        match err {
            Error::Layout(_) => LayoutError::new_err(message),
            Error::Decode(_) => DecodeError::new_err(message),
            Error::Ring(_) => RingError::new_err(message),
            Error::Batch(_) => BatchError::new_err(message),
            Error::Alarm(_) => AlarmError::new_err(message),
        }
    }
}
