//! The PyO3 binding: `panelfast._native`.
//!
//! Thin wrappers only: convert arguments, release the GIL around the work,
//! convert the result. One error mapping, in [`errors`].

use pyo3::prelude::*;

mod alarm;
mod batch;
mod decode;
mod errors;
mod modbus;
mod ring;
mod simulator;

#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::register(m)?;
    modbus::register(m)?;
    m.add_class::<alarm::PyAlarmSet>()?;
    m.add_class::<alarm::PyAlarmEvent>()?;
    m.add_class::<decode::PyRegisterType>()?;
    m.add("REGISTER_TYPES", decode::register_types(m.py())?)?;
    m.add_class::<decode::PyField>()?;
    m.add_class::<decode::PyRegisterLayout>()?;
    m.add_class::<decode::PyDecoded>()?;
    m.add_class::<ring::PySampleRing>()?;
    m.add_class::<ring::PySeriesSet>()?;
    m.add_class::<ring::PyRingStats>()?;
    m.add_class::<batch::PyEncodedBatch>()?;
    m.add_class::<simulator::PySimulator>()?;
    m.add_function(wrap_pyfunction!(batch::encode_batches, m)?)?;
    m.add_function(wrap_pyfunction!(batch::encode_msgpack, m)?)?;
    m.add_function(wrap_pyfunction!(batch::decode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(batch::rebatch, m)?)?;
    m.add("MAX_BODY_BYTES", crate::batch::MAX_BODY_BYTES)?;
    m.add("DEFAULT_LEVEL", crate::batch::DEFAULT_LEVEL)?;
    Ok(())
}
