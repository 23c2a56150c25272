//! The PyO3 binding: `panelfast._native`.
//!
//! Thin wrappers only: convert arguments, release the GIL around the work,
//! convert the result. One error mapping, in [`errors`].

use pyo3::prelude::*;

mod errors;
mod modbus;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    modbus::register(m)?;
    Ok(())
}
