//! `panelfast._native.ModbusEngine`: the acquisition engine for Python.
//!
//! Thin: arguments become a [`DeviceConfig`] (points arrive as typed
//! [`PyModbusPoint`]s), results become numpy arrays and frozen
//! [`PyDeviceDiagnostics`], built once here. Every call that waits (stop,
//! write) or copies many values (snapshot) releases the GIL.

use std::time::Duration;

use numpy::PyArray1;
use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::decode::PyField;
use super::errors::{LayoutError, PanelfastError};
use crate::modbus::{
    DeviceConfig, DeviceDiagnostics, Engine, EngineError, ErrorRecord, LinkError, Parity,
    PlanLimits, PointConfig, ReadFunction, RegisterRange, RequestError, SerialConfig, Transport,
    WriteRequest, RTT_BUCKET_BOUNDS_US,
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
    m.add_class::<PyModbusPoint>()?;
    m.add_class::<PyDeviceDiagnostics>()?;
    m.add_class::<PyLastError>()?;
    m.add_class::<PyRegisterRange>()?;
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

/// One point to poll: the function code that reads it and its decoder field.
#[pyclass(module = "panelfast._native", name = "ModbusPoint", frozen)]
pub struct PyModbusPoint {
    point: PointConfig,
}

#[pymethods]
impl PyModbusPoint {
    #[new]
    #[pyo3(signature = (function, field, *, identification = false))]
    fn new(function: u8, field: PyRef<'_, PyField>, identification: bool) -> PyResult<Self> {
        let function = ReadFunction::from_code(function).ok_or_else(|| {
            PyValueError::new_err(format!(
                "function {function} is not a read: use 1, 2, 3 or 4"
            ))
        })?;
        Ok(PyModbusPoint {
            point: PointConfig {
                function,
                field: field.spec.clone(),
                identification,
            },
        })
    }

    #[getter]
    fn function(&self) -> u8 {
        self.point.function.code()
    }

    #[getter]
    fn field(&self) -> PyField {
        PyField {
            spec: self.point.field.clone(),
        }
    }

    #[getter]
    fn identification(&self) -> bool {
        self.point.identification
    }

    fn __repr__(&self) -> String {
        format!(
            "ModbusPoint(function={}, address={}, type={:?}, identification={})",
            self.point.function.code(),
            self.point.field.address,
            self.point.field.data_type.name(),
            if self.point.identification {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// Registers (or bits) of one function code: `count` from `address`.
#[pyclass(
    module = "panelfast._native",
    name = "RegisterRange",
    frozen,
    eq,
    hash,
    get_all
)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PyRegisterRange {
    function: u8,
    address: u16,
    count: u16,
}

#[pymethods]
impl PyRegisterRange {
    #[new]
    fn new(function: u8, address: u16, count: u16) -> Self {
        PyRegisterRange {
            function,
            address,
            count,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RegisterRange(function={}, address={}, count={})",
            self.function, self.address, self.count
        )
    }
}

impl From<&RegisterRange> for PyRegisterRange {
    fn from(range: &RegisterRange) -> Self {
        PyRegisterRange {
            function: range.function.code(),
            address: range.address,
            count: range.count,
        }
    }
}

/// A device's last failed request.
#[pyclass(module = "panelfast._native", name = "LastError", frozen, eq, get_all)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyLastError {
    kind: &'static str,
    code: Option<u8>,
    name: String,
    message: String,
    at_ms: i64,
}

#[pymethods]
impl PyLastError {
    fn __repr__(&self) -> String {
        format!(
            "LastError(kind={:?}, code={}, name={:?}, message={:?}, at_ms={})",
            self.kind,
            self.code.map_or("None".into(), |c| c.to_string()),
            self.name,
            self.message,
            self.at_ms
        )
    }
}

impl From<&ErrorRecord> for PyLastError {
    fn from(e: &ErrorRecord) -> Self {
        PyLastError {
            kind: e.kind,
            code: e.code,
            name: e.name.clone(),
            message: e.message.clone(),
            at_ms: e.at_ms,
        }
    }
}

/// How a device's polling goes: state, last error, round trips, counters,
/// and the registers it lacks.
#[pyclass(
    module = "panelfast._native",
    name = "DeviceDiagnostics",
    frozen,
    eq,
    get_all
)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyDeviceDiagnostics {
    device_id: String,
    state: &'static str,
    last_error: Option<PyLastError>,
    rtt_last_ms: f64,
    rtt_mean_ms: f64,
    rtt_max_ms: f64,
    requests: u64,
    errors: u64,
    timeouts: u64,
    exceptions: u64,
    exception_codes: Vec<(u8, u64)>,
    transport_errors: u64,
    protocol_errors: u64,
    /// Cumulative, as Prometheus wants them: `(upper bound in seconds, answered
    /// requests whose round trip was at most that)`, the last bound infinite.
    rtt_buckets: Vec<(f64, u64)>,
    rtt_sum_s: f64,
    cycles: u64,
    overruns: u64,
    reads_per_cycle: usize,
    last_cycle_ms: Option<i64>,
    last_cycle_duration_ms: f64,
    last_answer_ms: Option<i64>,
    lacking: Vec<PyRegisterRange>,
}

#[pymethods]
impl PyDeviceDiagnostics {
    fn __repr__(&self) -> String {
        format!("{self:?}").replacen("PyDeviceDiagnostics", "DeviceDiagnostics", 1)
    }
}

impl PyDeviceDiagnostics {
    /// The same diagnostics with every wall-clock time moved by `offset_ms`.
    fn shifted(mut self, offset_ms: i64) -> Self {
        if offset_ms != 0 {
            let shift = |t: i64| t.saturating_add(offset_ms);
            if let Some(e) = self.last_error.as_mut() {
                e.at_ms = shift(e.at_ms);
            }
            self.last_cycle_ms = self.last_cycle_ms.map(shift);
            self.last_answer_ms = self.last_answer_ms.map(shift);
        }
        self
    }
}

impl From<&DeviceDiagnostics> for PyDeviceDiagnostics {
    fn from(d: &DeviceDiagnostics) -> Self {
        let ms = |t: Duration| t.as_secs_f64() * 1000.0;
        PyDeviceDiagnostics {
            device_id: d.device_id.clone(),
            state: d.state.name(),
            last_error: d.last_error.as_ref().map(PyLastError::from),
            rtt_last_ms: ms(d.rtt.last),
            rtt_mean_ms: ms(d.rtt.mean()),
            rtt_max_ms: ms(d.rtt.max),
            requests: d.requests,
            errors: d.errors,
            timeouts: d.timeouts,
            exceptions: d.exceptions,
            exception_codes: d.exception_codes.clone(),
            transport_errors: d.transport_errors,
            protocol_errors: d.protocol_errors,
            rtt_buckets: cumulative_buckets(&d.rtt.buckets),
            rtt_sum_s: d.rtt.total.as_secs_f64(),
            cycles: d.cycles,
            overruns: d.overruns,
            reads_per_cycle: d.reads_per_cycle,
            last_cycle_ms: d.last_cycle_ms,
            last_cycle_duration_ms: ms(d.last_cycle_duration),
            last_answer_ms: d.last_answer_ms,
            lacking: d.lacking.iter().map(PyRegisterRange::from).collect(),
        }
    }
}

fn cumulative_buckets(counts: &[u64]) -> Vec<(f64, u64)> {
    let bounds = RTT_BUCKET_BOUNDS_US
        .iter()
        .map(|&us| us as f64 / 1e6)
        .chain(std::iter::once(f64::INFINITY));
    let mut running = 0;
    bounds
        .zip(counts)
        .map(|(bound, &count)| {
            running += count;
            (bound, running)
        })
        .collect()
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
        points: Vec<PyRef<'_, PyModbusPoint>>,
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
        let points = points.iter().map(|p| p.point.clone()).collect();
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

    /// Each device's diagnostics, in the order added.
    /// Each device's diagnostics; their times (`last_error.at_ms`,
    /// `last_cycle_ms`, `last_answer_ms`) are the system clock's plus
    /// `clock_offset_ms`, so that they are on the gateway's synchronised clock
    /// like every other time it shows.
    #[pyo3(signature = (clock_offset_ms = 0))]
    fn diagnostics(&self, clock_offset_ms: i64) -> Vec<PyDeviceDiagnostics> {
        self.engine
            .diagnostics()
            .iter()
            .map(|d| PyDeviceDiagnostics::from(d).shifted(clock_offset_ms))
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
