//! `panelfast._native.ModbusEngine`: the acquisition engine for Python.
//!
//! Thin: arguments become a [`DeviceConfig`], results become numpy arrays and
//! dicts. Every call that waits (stop, write) or copies many values
//! (snapshot) releases the GIL.

use std::time::Duration;

use numpy::PyArray1;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyTuple};

use super::errors::{LayoutError, PanelfastError};
use crate::decode::{DataType, FieldSpec, Sentinel, WordOrder};
use crate::modbus::{
    DeviceConfig, DeviceDiagnostics, Engine, EngineError, LinkError, Parity, PlanLimits,
    PointConfig, ReadFunction, RequestError, SerialConfig, Transport, WriteRequest,
};

create_exception!(
    _native,
    ModbusError,
    PanelfastError,
    "The Modbus engine refused a call, or a Modbus request failed."
);
create_exception!(
    _native,
    ModbusExceptionError,
    ModbusError,
    "The device answered with a Modbus exception response (`code`, `name`)."
);
create_exception!(
    _native,
    ModbusTimeoutError,
    ModbusError,
    "The device did not answer within its timeout."
);
create_exception!(
    _native,
    ModbusTransportError,
    ModbusError,
    "The connection failed or was reset, or the answer did not match the request."
);

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<ModbusEngine>()?;
    m.add("ModbusError", py.get_type::<ModbusError>())?;
    m.add(
        "ModbusExceptionError",
        py.get_type::<ModbusExceptionError>(),
    )?;
    m.add("ModbusTimeoutError", py.get_type::<ModbusTimeoutError>())?;
    m.add(
        "ModbusTransportError",
        py.get_type::<ModbusTransportError>(),
    )?;
    Ok(())
}

fn engine_error(py: Python<'_>, error: EngineError) -> PyErr {
    let message = error.to_string();
    match error {
        EngineError::Layout(_) => LayoutError::new_err(message),
        EngineError::Request(RequestError::Exception(code)) => {
            let err = ModbusExceptionError::new_err(message);
            let value = err.value(py);
            // Attributes of a fresh exception instance: setting them cannot fail.
            let _ = value.setattr("code", u8::from(code));
            let _ = value.setattr("name", crate::modbus::exception_name(code));
            err
        }
        EngineError::Request(RequestError::Link(LinkError::Timeout)) => {
            ModbusTimeoutError::new_err(message)
        }
        EngineError::Request(RequestError::Link(
            LinkError::Transport(_) | LinkError::Protocol(_),
        )) => ModbusTransportError::new_err(message),
        EngineError::Config(_) | EngineError::UnknownDevice(_) | EngineError::NotRunning => {
            ModbusError::new_err(message)
        }
    }
}

/// One point tuple: (function, address, type, order, scale, offset, invalid, bit, bits, length).
fn point(index: usize, item: &Bound<'_, PyAny>) -> PyResult<PointConfig> {
    let bad = |what: String| PyValueError::new_err(format!("point {index}: {what}"));
    let tuple = item.cast::<PyTuple>().map_err(|_| {
        bad("expected a tuple (function, address, type, order, scale, offset, invalid, bit, bits, length)".into())
    })?;
    if tuple.len() != 10 {
        return Err(bad(format!("expected 10 items, got {}", tuple.len())));
    }
    let function: u8 = tuple.get_item(0)?.extract()?;
    let function = ReadFunction::from_code(function).ok_or_else(|| {
        bad(format!(
            "function {function} is not a read: use 1, 2, 3 or 4"
        ))
    })?;
    let address: u16 = tuple
        .get_item(1)?
        .extract()
        .map_err(|_| bad("address must be 0..=65535".into()))?;
    let type_name: String = tuple.get_item(2)?.extract()?;
    let data_type = DataType::from_name(&type_name)
        .ok_or_else(|| bad(format!("unknown data type {type_name:?}")))?;
    let order_name: String = tuple.get_item(3)?.extract()?;
    let order = WordOrder::from_name(&order_name)
        .ok_or_else(|| bad(format!("unknown word order {order_name:?}")))?;
    let invalid = tuple.get_item(6)?;
    let sentinel = if invalid.is_none() {
        Sentinel::Default
    } else if invalid.is_instance_of::<PyBool>() {
        if invalid.extract::<bool>()? {
            return Err(bad("invalid is an integer pattern, None or False".into()));
        }
        Sentinel::Disabled
    } else {
        Sentinel::Raw(
            invalid
                .extract::<u64>()
                .map_err(|_| bad("invalid must be a non-negative integer pattern".into()))?,
        )
    };
    let small = |k: usize, what: &str| -> PyResult<u8> {
        tuple
            .get_item(k)?
            .extract()
            .map_err(|_| bad(format!("{what} must be 0..=255")))
    };
    Ok(PointConfig {
        function,
        field: FieldSpec {
            address,
            data_type,
            order,
            scale: tuple.get_item(4)?.extract()?,
            offset: tuple.get_item(5)?.extract()?,
            sentinel,
            bit: small(7, "bit")?,
            bits: small(8, "bits")?,
            length: tuple
                .get_item(9)?
                .extract()
                .map_err(|_| bad("length must be 0..=65535".into()))?,
        },
    })
}

fn diagnostics_dict<'py>(py: Python<'py>, d: &DeviceDiagnostics) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    dict.set_item("device_id", &d.device_id)?;
    dict.set_item("state", d.state.name())?;
    let last_error = match &d.last_error {
        None => None,
        Some(e) => {
            let error = PyDict::new(py);
            error.set_item("kind", e.kind)?;
            error.set_item("code", e.code)?;
            error.set_item("name", &e.name)?;
            error.set_item("message", &e.message)?;
            error.set_item("at_ms", e.at_ms)?;
            Some(error)
        }
    };
    dict.set_item("last_error", last_error)?;
    let ms = |t: Duration| t.as_secs_f64() * 1000.0;
    dict.set_item("rtt_last_ms", ms(d.rtt.last))?;
    dict.set_item("rtt_mean_ms", ms(d.rtt.mean()))?;
    dict.set_item("rtt_max_ms", ms(d.rtt.max))?;
    dict.set_item("requests", d.requests)?;
    dict.set_item("errors", d.errors)?;
    dict.set_item("timeouts", d.timeouts)?;
    dict.set_item("exceptions", d.exceptions)?;
    dict.set_item("cycles", d.cycles)?;
    dict.set_item("overruns", d.overruns)?;
    dict.set_item("reads_per_cycle", d.reads_per_cycle)?;
    dict.set_item("last_cycle_ms", d.last_cycle_ms)?;
    dict.set_item("last_cycle_duration_ms", ms(d.last_cycle_duration))?;
    dict.set_item("last_answer_ms", d.last_answer_ms)?;
    Ok(dict)
}

type SnapshotArrays<'py> = (
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<i64>>,
    Bound<'py, PyArray1<bool>>,
    Bound<'py, PyArray1<i64>>,
);

/// The Modbus acquisition engine: add devices, `start()`, then read
/// `snapshot()` and `diagnostics()` and `write()` from any thread.
#[pyclass(frozen, module = "panelfast._native")]
pub struct ModbusEngine {
    engine: Engine,
}

#[pymethods]
impl ModbusEngine {
    #[new]
    fn new() -> Self {
        ModbusEngine {
            engine: Engine::new(),
        }
    }

    /// Add a device; its points are planned and compiled now.
    #[pyo3(signature = (
        device_id, *, transport, points, host = "", port = 502,
        serial_port = "", baud_rate = 19200, parity = "even",
        stop_bits = 1, data_bits = 8, unit_id = 1, period_ms = 1000, timeout_ms = 1000,
        retries = 2, max_registers_per_read = 125, max_gap = 16
    ))]
    #[allow(clippy::too_many_arguments)]
    fn add_device(
        &self,
        device_id: String,
        transport: &str,
        points: Vec<Bound<'_, PyAny>>,
        host: &str,
        port: u16,
        serial_port: &str,
        baud_rate: u32,
        parity: &str,
        stop_bits: u8,
        data_bits: u8,
        unit_id: u8,
        period_ms: u64,
        timeout_ms: u64,
        retries: u8,
        max_registers_per_read: u16,
        max_gap: u16,
        py: Python<'_>,
    ) -> PyResult<()> {
        let transport = match transport {
            "tcp" => Transport::Tcp {
                host: host.to_string(),
                port,
            },
            "rtu-over-tcp" => Transport::RtuOverTcp {
                host: host.to_string(),
                port,
            },
            "rtu" => Transport::Rtu(SerialConfig {
                path: serial_port.to_string(),
                baud_rate,
                parity: match parity {
                    "none" => Parity::None,
                    "even" => Parity::Even,
                    "odd" => Parity::Odd,
                    other => {
                        return Err(PyValueError::new_err(format!(
                            "parity is 'none', 'even' or 'odd', not {other:?}"
                        )))
                    }
                },
                stop_bits,
                data_bits,
            }),
            other => {
                return Err(PyValueError::new_err(format!(
                    "transport is 'tcp', 'rtu-over-tcp' or 'rtu', not {other:?}"
                )))
            }
        };
        let points = points
            .iter()
            .enumerate()
            .map(|(index, item)| point(index, item))
            .collect::<PyResult<Vec<_>>>()?;
        let config = DeviceConfig {
            id: device_id,
            transport,
            unit_id,
            period: Duration::from_millis(period_ms),
            timeout: Duration::from_millis(timeout_ms),
            retries,
            limits: PlanLimits {
                max_registers_per_read,
                max_gap,
            },
            points,
        };
        self.engine
            .add_device(config)
            .map_err(|e| engine_error(py, e))
    }

    /// Start polling every device.
    fn start(&self, py: Python<'_>) -> PyResult<()> {
        self.engine.start().map_err(|e| engine_error(py, e))
    }

    /// Stop polling and close every connection.
    fn stop(&self, py: Python<'_>) {
        py.detach(|| self.engine.stop());
    }

    /// Whether the engine is polling.
    #[getter]
    fn running(&self) -> bool {
        self.engine.is_running()
    }

    /// Number of points of all devices (the length of a snapshot).
    fn point_count(&self) -> usize {
        self.engine.point_count()
    }

    /// `(device_id, index of its first point in a snapshot)`, in the order added.
    fn device_offsets(&self) -> Vec<(String, usize)> {
        self.engine.device_offsets()
    }

    /// `(values, integers, valid, read_at_ms)` of every point: devices in the
    /// order added, each device's points in the order given. `values` is NaN
    /// where not valid; `integers` holds exact unscaled integers (else
    /// `i64::MIN`); `read_at_ms` is when the read was sent (0: never).
    fn snapshot<'py>(&self, py: Python<'py>) -> SnapshotArrays<'py> {
        let snapshot = py.detach(|| self.engine.snapshot());
        (
            PyArray1::from_vec(py, snapshot.values),
            PyArray1::from_vec(py, snapshot.integers),
            PyArray1::from_vec(py, snapshot.valid),
            PyArray1::from_vec(py, snapshot.read_at_ms),
        )
    }

    /// `{snapshot index: text}` of every ASCII point that has one.
    fn texts(&self) -> std::collections::HashMap<usize, String> {
        self.engine.texts().into_iter().collect()
    }

    /// The raw blocks of a device's last cycle, one per read:
    /// `(function, start, read_at_ms, registers or None)`.
    #[allow(clippy::type_complexity)]
    fn raw_blocks<'py>(
        &self,
        py: Python<'py>,
        device_id: &str,
    ) -> PyResult<Vec<(u8, u16, i64, Option<Bound<'py, PyArray1<u16>>>)>> {
        let blocks = self
            .engine
            .raw_blocks(device_id)
            .map_err(|e| engine_error(py, e))?;
        Ok(blocks
            .into_iter()
            .map(|b| {
                let registers = b.registers.map(|r| PyArray1::from_vec(py, r));
                (b.function.code(), b.start, b.read_at_ms, registers)
            })
            .collect())
    }

    /// One dict per device, in the order added.
    fn diagnostics<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.engine
            .diagnostics()
            .iter()
            .map(|d| diagnostics_dict(py, d))
            .collect()
    }

    /// Write with function 5, 6, 15 or 16 and wait for the answer (GIL released).
    fn write(
        &self,
        py: Python<'_>,
        device_id: &str,
        function: u8,
        address: u16,
        values: Vec<u16>,
    ) -> PyResult<()> {
        let request =
            WriteRequest::new(function, address, &values).map_err(PyValueError::new_err)?;
        py.detach(|| self.engine.write(device_id, request))
            .map_err(|e| engine_error(py, e))
    }
}
