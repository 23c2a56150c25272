//! `Simulator`: the Rust device simulator, driven from Python.
//!
//! Models cross as plain tuples of [`Field`](super::decode::PyField)s, so a
//! point is validated by the same code that decodes it in the gateway.

use pyo3::prelude::*;

use super::decode::PyField;
use crate::simulator::{
    self, Bound as Listening, DeviceSpec, Faults, ListenerSpec, ModelSpec, OutputSpec, PointSpec,
    Quantity, Value,
};
use crate::Error;

/// (id, function code, field, quantity, unit factor).
type PyPoint<'py> = (String, u8, Bound<'py, PyField>, String, f64);
/// (id, command address, status address, impulse).
type PyOutput = (String, u16, u16, bool);
/// (name, points, outputs, max registers per read).
type PyModel<'py> = (String, Vec<PyPoint<'py>>, Vec<PyOutput>, u16);
/// (model index, listener index, unit id, seed).
type PyDevice = (usize, usize, u8, u64);
/// ("tcp" | "rtu-over-tcp", host, port) or ("rtu", serial port path, baud rate).
type PyListener = (String, String, u32);
/// (function code, first address, count).
type PyRange = (u8, u16, u16);
/// (dead, offline, latency_ms, busy_fraction, illegal ranges, unavailable points).
type PyFaults = (bool, bool, u32, f64, Vec<PyRange>, Vec<u32>);

/// Simulated Modbus devices behind Modbus TCP listeners.
#[pyclass(module = "panelfast._native", name = "Simulator")]
pub struct PySimulator {
    inner: simulator::Simulator,
}

fn model_spec(model: PyModel<'_>) -> PyResult<ModelSpec> {
    let (name, points, outputs, max_registers_per_read) = model;
    let points = points
        .into_iter()
        .map(|(id, function, field, quantity, unit_factor)| {
            let quantity = Quantity::parse(&quantity)
                .map_err(|e| Error::Simulator(format!("model {name}: {id}: {e}")))?;
            Ok(PointSpec {
                id,
                function,
                field: field.get().spec.clone(),
                quantity,
                unit_factor,
            })
        })
        .collect::<PyResult<Vec<_>>>()?;
    let outputs = outputs
        .into_iter()
        .map(
            |(id, command_address, status_address, impulse)| OutputSpec {
                id,
                command_address,
                status_address,
                impulse,
            },
        )
        .collect();
    Ok(ModelSpec {
        name,
        points,
        outputs,
        max_registers_per_read,
    })
}

fn listener_spec(transport: &str, place: String, number: u32) -> PyResult<ListenerSpec> {
    let port = || {
        u16::try_from(number)
            .map_err(|_| Error::Simulator(format!("port {number} is not within 0..=65535")))
    };
    Ok(match transport {
        "tcp" => ListenerSpec::Tcp {
            host: place,
            port: port()?,
        },
        "rtu-over-tcp" => ListenerSpec::RtuOverTcp {
            host: place,
            port: port()?,
        },
        "rtu" => ListenerSpec::Serial {
            path: place,
            baud_rate: number,
        },
        other => {
            return Err(Error::Simulator(format!(
                "transport {other:?} is not one of tcp, rtu-over-tcp, rtu"
            ))
            .into())
        }
    })
}

fn to_py(py: Python<'_>, value: Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        Value::Float(x) => x.into_pyobject(py)?.into_any().unbind(),
        Value::Text(t) => t.into_pyobject(py)?.into_any().unbind(),
        Value::Unavailable => py.None(),
    })
}

#[pymethods]
impl PySimulator {
    #[new]
    #[pyo3(signature = (models, listeners, devices, tick_ms = 100))]
    fn new(
        models: Vec<PyModel<'_>>,
        listeners: Vec<PyListener>,
        devices: Vec<PyDevice>,
        tick_ms: u32,
    ) -> PyResult<Self> {
        let models = models
            .into_iter()
            .map(model_spec)
            .collect::<PyResult<Vec<_>>>()?;
        let listeners = listeners
            .into_iter()
            .map(|(transport, place, number)| listener_spec(&transport, place, number))
            .collect::<PyResult<Vec<_>>>()?;
        let devices = devices
            .into_iter()
            .map(|(model, listener, unit_id, seed)| DeviceSpec {
                model,
                listener,
                unit_id,
                seed,
                faults: Faults::default(),
            })
            .collect();
        Ok(PySimulator {
            inner: simulator::Simulator::new(models, listeners, devices, tick_ms)?,
        })
    }

    /// Bind and serve; the (host, port) each listener is bound to ((path, 0) for serial lines).
    fn start(&mut self, py: Python<'_>) -> PyResult<Vec<(String, u16)>> {
        let inner = &mut self.inner;
        let bound = py.detach(|| inner.start())?;
        Ok(bound
            .into_iter()
            .map(|b| match b {
                Listening::Tcp(a) => (a.ip().to_string(), a.port()),
                Listening::Serial(path) => (path, 0),
            })
            .collect())
    }

    fn stop(&mut self, py: Python<'_>) {
        let inner = &mut self.inner;
        py.detach(|| inner.stop());
    }

    #[getter]
    fn running(&self) -> bool {
        self.inner.is_running()
    }

    #[getter]
    fn tick_ms(&self) -> i64 {
        self.inner.tick_ms()
    }

    fn __len__(&self) -> usize {
        self.inner.device_count()
    }

    /// The value device `device` serves for point `point` of its model at `t_ms`.
    fn truth(&self, py: Python<'_>, device: usize, point: usize, t_ms: i64) -> PyResult<Py<PyAny>> {
        to_py(py, self.inner.truth(device, point, t_ms)?)
    }

    /// What a read of `function` would return at `t_ms`, without the network.
    fn registers(
        &self,
        device: usize,
        function: u8,
        address: u16,
        count: u16,
        t_ms: i64,
    ) -> PyResult<Vec<u16>> {
        Ok(self
            .inner
            .registers(device, function, address, count, t_ms)?)
    }

    #[pyo3(signature = (device, *, dead, offline, latency_ms, busy_fraction, illegal, unavailable))]
    #[allow(clippy::too_many_arguments)]
    fn set_faults(
        &self,
        device: usize,
        dead: bool,
        offline: bool,
        latency_ms: u32,
        busy_fraction: f64,
        illegal: Vec<PyRange>,
        unavailable: Vec<u32>,
    ) -> PyResult<()> {
        let faults = Faults {
            dead,
            offline,
            latency_ms,
            busy_fraction,
            illegal,
            unavailable,
        };
        Ok(self.inner.set_faults(device, faults)?)
    }

    /// (dead, offline, latency_ms, busy_fraction, illegal ranges, unavailable points) of a device.
    fn faults(&self, device: usize) -> PyResult<PyFaults> {
        let f = self.inner.faults(device)?;
        Ok((
            f.dead,
            f.offline,
            f.latency_ms,
            f.busy_fraction,
            f.illegal,
            f.unavailable,
        ))
    }

    /// `{(function, address, count): times}` of the reads a device was sent.
    fn reads(&self, device: usize) -> PyResult<std::collections::HashMap<(u8, u16, u16), u64>> {
        Ok(self.inner.reads(device)?.into_iter().collect())
    }

    /// Each output's load state (True = on), in the model's output order.
    fn outputs(&self, device: usize) -> PyResult<Vec<bool>> {
        Ok(self.inner.outputs(device)?)
    }

    /// How many write requests reached device `device`.
    fn writes(&self, device: usize) -> PyResult<u64> {
        Ok(self.inner.writes(device)?)
    }

    /// The simulator's clock: milliseconds since the Unix epoch.
    #[staticmethod]
    fn now_ms() -> i64 {
        simulator::now_ms()
    }
}
