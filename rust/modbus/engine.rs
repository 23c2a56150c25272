//! The acquisition engine: devices grouped into links, each link one task on
//! the engine's own tokio runtime; values and diagnostics shared for readers.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::config::{DeviceConfig, PointConfig, Transport};
use super::connection::{Connection, Endpoint};
use super::diag::DeviceDiagnostics;
use super::link::{run_link, DeviceRunner, LayoutGroup, RawBlock, Shared, Template, WriteJob};
use super::plan::{Plan, PlanLimits, PointSpan, ReadFunction};
use super::schedule::stagger;
use super::{RequestError, UnitId, UnixMs, WriteRequest};
use crate::decode::{FieldSpec, Layout};

/// Why the engine refused a call.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// A device's settings are invalid; names the device and the setting.
    Config(String),
    /// A point's decoder field is invalid (see [`crate::decode`]).
    Layout(crate::Error),
    /// No device has this id.
    UnknownDevice(String),
    /// The engine is not running (not started yet, or stopped).
    NotRunning,
    /// The request reached the device's link and failed there.
    Request(RequestError),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EngineError::Config(message) => f.write_str(message),
            EngineError::Layout(error) => write!(f, "{error}"),
            EngineError::UnknownDevice(id) => write!(f, "no device {id:?} in the engine"),
            EngineError::NotRunning => f.write_str("the acquisition engine is not running"),
            EngineError::Request(error) => write!(f, "{error}"),
        }
    }
}

impl std::error::Error for EngineError {}

/// The latest values of every point of every device, in device order then
/// point order (the order they were added).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub values: Vec<f64>,
    pub integers: Vec<i64>,
    pub valid: Vec<bool>,
    pub read_at_ms: Vec<UnixMs>,
}

#[derive(Debug)]
struct DeviceEntry {
    id: String,
    shared: Arc<Shared>,
    unit: UnitId,
    timeout: Duration,
    link: usize,
}

#[derive(Debug)]
struct LinkEntry {
    endpoint: Endpoint,
    /// Devices waiting for `start`; moved into the link's task then.
    pending: Vec<DeviceRunner>,
    writes: Option<mpsc::Sender<WriteJob>>,
}

#[derive(Debug, Default)]
struct Inner {
    devices: Vec<DeviceEntry>,
    links: Vec<LinkEntry>,
    /// Templates by the points and limits they were built from.
    templates: Vec<(Vec<PointConfig>, PlanLimits, Arc<Template>)>,
    driver: Option<Driver>,
    started: bool,
}

/// The thread that runs the engine's runtime, and how to stop it.
///
/// One thread drives every link: a request costs the engine microseconds and
/// the rest is waiting, so a hundred devices keep one thread a few percent
/// busy. A single-threaded runtime has no work stealing and no wake-ups of a
/// second worker: on a 2-core gateway those cost more than the work itself,
/// and they sit on every request's round trip.
#[derive(Debug)]
struct Driver {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

/// The Modbus acquisition engine. Add devices, start it, then read snapshots
/// and diagnostics and send writes from any thread.
#[derive(Debug, Default)]
pub struct Engine {
    inner: Mutex<Inner>,
}

impl Engine {
    pub fn new() -> Engine {
        Engine::default()
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Add a device (before `start`). Its points are planned and their
    /// decoders compiled now, so every mistake is reported here.
    pub fn add_device(&self, config: DeviceConfig) -> Result<(), EngineError> {
        let mut inner = self.inner();
        if inner.started {
            return Err(EngineError::Config(
                "devices are added before the engine starts".into(),
            ));
        }
        let id = config.id.clone();
        let bad = |message: String| EngineError::Config(format!("device {id:?}: {message}"));
        if id.is_empty() {
            return Err(EngineError::Config("a device id cannot be empty".into()));
        }
        if inner.devices.iter().any(|d| d.id == id) {
            return Err(bad("this id is used twice".into()));
        }
        if config.period < Duration::from_millis(10) {
            return Err(bad("the poll period must be at least 10 ms".into()));
        }
        if config.timeout < Duration::from_millis(1) {
            return Err(bad("the timeout must be at least 1 ms".into()));
        }
        let endpoint = match &config.transport {
            Transport::Tcp { host, port } => Endpoint::Tcp(host.clone(), *port),
            Transport::RtuOverTcp { host, port } => Endpoint::RtuOverTcp(host.clone(), *port),
            Transport::Rtu(serial) => {
                if !(1..=247).contains(&config.unit_id) {
                    return Err(bad(format!(
                        "unit id {} on a serial bus must be 1..=247",
                        config.unit_id
                    )));
                }
                if !matches!(serial.data_bits, 7 | 8) || !matches!(serial.stop_bits, 1 | 2) {
                    return Err(bad("data bits are 7 or 8, stop bits 1 or 2".into()));
                }
                if serial.baud_rate == 0 {
                    return Err(bad("the baud rate must be positive".into()));
                }
                Endpoint::Serial(serial.clone())
            }
        };
        let known = inner
            .templates
            .iter()
            .find(|(points, limits, _)| *limits == config.limits && *points == config.points);
        let template = match known {
            Some((_, _, template)) => Arc::clone(template),
            None => {
                let template = Arc::new(build_template(&config, &bad)?);
                inner
                    .templates
                    .push((config.points.clone(), config.limits, Arc::clone(&template)));
                template
            }
        };
        let shared = Arc::new(Shared::new(&config.id, config.points.len()));
        shared.diag().reads_per_cycle = template.plan.reads().len();
        let runner = DeviceRunner::new(
            Arc::clone(&shared),
            config.unit_id,
            config.period,
            config.timeout,
            config.retries,
            template,
        );
        let link = match inner
            .links
            .iter()
            .position(|l| same_link(&l.endpoint, &endpoint))
        {
            Some(index) if inner.links[index].endpoint != endpoint => {
                return Err(bad(
                    "its link is already used by another device with other settings (transport or serial line)".into(),
                ));
            }
            Some(index) => index,
            None => {
                inner.links.push(LinkEntry {
                    endpoint,
                    pending: Vec::new(),
                    writes: None,
                });
                inner.links.len() - 1
            }
        };
        inner.links[link].pending.push(runner);
        inner.devices.push(DeviceEntry {
            id,
            shared,
            unit: config.unit_id,
            timeout: config.timeout,
            link,
        });
        Ok(())
    }

    /// Start polling: the runtime, on a thread of its own, and one task per link.
    pub fn start(&self) -> Result<(), EngineError> {
        let mut inner = self.inner();
        if inner.started {
            return Err(EngineError::Config(
                "the engine was already started; build a new one to start again".into(),
            ));
        }
        let cannot = |e: std::io::Error| {
            EngineError::Config(format!("cannot start the Modbus runtime: {e}"))
        };
        // Blocking threads only for name lookups (see `tcp_connect`).
        let runtime = tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(4)
            .thread_name("panelfast-modbus")
            .enable_all()
            .build()
            .map_err(cannot)?;
        for link in &mut inner.links {
            let mut devices = std::mem::take(&mut link.pending);
            // A serial bus, or one behind a serial-to-Ethernet converter.
            let bus = matches!(
                link.endpoint,
                Endpoint::Serial(_) | Endpoint::RtuOverTcp(..)
            );
            if bus && devices.len() > 1 {
                let count = devices.len();
                for (index, device) in devices.iter_mut().enumerate() {
                    device.offset_ms = stagger(index, count, device.period_ms);
                    // On a shared bus a silent device costs at most one timeout
                    // a cycle: its read is tried again next cycle, not now.
                    device.retries = 0;
                }
            }
            let (sender, receiver) = mpsc::channel(64);
            link.writes = Some(sender);
            // Queued now, run once the thread below drives the runtime.
            runtime.spawn(run_link(
                Connection::new(link.endpoint.clone()),
                devices,
                receiver,
            ));
        }
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("panelfast-modbus".into())
            .spawn(move || {
                // Until `stop` is sent or dropped; then every link task is
                // dropped, which closes its connection.
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(cannot)?;
        inner.driver = Some(Driver { stop, thread });
        inner.started = true;
        Ok(())
    }

    /// Stop polling and close every connection (waits at most about a second).
    pub fn stop(&self) {
        let driver = {
            let mut inner = self.inner();
            for link in &mut inner.links {
                link.writes = None;
            }
            inner.driver.take()
        };
        if let Some(Driver { stop, thread }) = driver {
            let _ = stop.send(());
            // A panic on the thread has already been reported on stderr.
            let _ = thread.join();
        }
    }

    /// Whether the engine is polling.
    pub fn is_running(&self) -> bool {
        self.inner().driver.is_some()
    }

    /// Number of points of all devices: the length of a snapshot.
    pub fn point_count(&self) -> usize {
        self.inner()
            .devices
            .iter()
            .map(|d| d.shared.values().values.len())
            .sum()
    }

    /// Device ids with the index of their first point in a snapshot.
    pub fn device_offsets(&self) -> Vec<(String, usize)> {
        let inner = self.inner();
        let mut offset = 0;
        inner
            .devices
            .iter()
            .map(|d| {
                let first = offset;
                offset += d.shared.values().values.len();
                (d.id.clone(), first)
            })
            .collect()
    }

    /// The latest values of all points.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner();
        let total: usize = inner
            .devices
            .iter()
            .map(|d| d.shared.values().values.len())
            .sum();
        let mut snapshot = Snapshot {
            values: Vec::with_capacity(total),
            integers: Vec::with_capacity(total),
            valid: Vec::with_capacity(total),
            read_at_ms: Vec::with_capacity(total),
        };
        for device in &inner.devices {
            let values = device.shared.values();
            snapshot.values.extend_from_slice(&values.values);
            snapshot.integers.extend_from_slice(&values.integers);
            snapshot.valid.extend_from_slice(&values.valid);
            snapshot.read_at_ms.extend_from_slice(&values.read_at_ms);
        }
        snapshot
    }

    /// The text of every ASCII point that has one, by snapshot index.
    pub fn texts(&self) -> Vec<(usize, String)> {
        let inner = self.inner();
        let mut offset = 0;
        let mut texts = Vec::new();
        for device in &inner.devices {
            let values = device.shared.values();
            for (index, text) in &values.texts {
                texts.push((offset + index, text.clone()));
            }
            offset += values.values.len();
        }
        texts
    }

    /// The raw register blocks of a device's last cycle, one per read.
    pub fn raw_blocks(&self, device_id: &str) -> Result<Vec<RawBlock>, EngineError> {
        let inner = self.inner();
        let device = inner
            .devices
            .iter()
            .find(|d| d.id == device_id)
            .ok_or_else(|| EngineError::UnknownDevice(device_id.to_string()))?;
        let raw = device.shared.raw().clone();
        Ok(raw)
    }

    /// Diagnostics of every device, in the order they were added.
    pub fn diagnostics(&self) -> Vec<DeviceDiagnostics> {
        self.inner()
            .devices
            .iter()
            .map(|d| d.shared.diag().clone())
            .collect()
    }

    /// Write to a device and wait for its answer. It jumps ahead of the
    /// device link's polling. Blocks the calling thread: call it from a
    /// thread of your own, never from inside the engine's runtime.
    pub fn write(&self, device_id: &str, request: WriteRequest) -> Result<(), EngineError> {
        let (sender, job, receiver) = {
            let inner = self.inner();
            let device = inner
                .devices
                .iter()
                .find(|d| d.id == device_id)
                .ok_or_else(|| EngineError::UnknownDevice(device_id.to_string()))?;
            let sender = inner.links[device.link]
                .writes
                .clone()
                .ok_or(EngineError::NotRunning)?;
            let (reply, receiver) = oneshot::channel();
            let job = WriteJob {
                unit: device.unit,
                timeout: device.timeout,
                request,
                shared: Arc::clone(&device.shared),
                reply,
            };
            (sender, job, receiver)
        };
        sender
            .blocking_send(job)
            .map_err(|_| EngineError::NotRunning)?;
        let outcome = receiver
            .blocking_recv()
            .map_err(|_| EngineError::NotRunning)?;
        RequestError::from_outcome(outcome).map_err(EngineError::Request)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Stopped without waiting: the thread closes the connections and ends.
        if let Some(driver) = self.inner().driver.take() {
            let _ = driver.stop.send(());
        }
    }
}

/// Two endpoints that would share one connection (the same host and port, or serial port).
fn same_link(a: &Endpoint, b: &Endpoint) -> bool {
    match (a, b) {
        (
            Endpoint::Tcp(host_a, port_a) | Endpoint::RtuOverTcp(host_a, port_a),
            Endpoint::Tcp(host_b, port_b) | Endpoint::RtuOverTcp(host_b, port_b),
        ) => host_a == host_b && port_a == port_b,
        (Endpoint::Serial(a), Endpoint::Serial(b)) => a.path == b.path,
        _ => false,
    }
}

/// Plan a device's reads and compile its decoders.
fn build_template(
    config: &DeviceConfig,
    bad: &dyn Fn(String) -> EngineError,
) -> Result<Template, EngineError> {
    let mut spans = Vec::with_capacity(config.points.len());
    let mut grouped: HashMap<ReadFunction, (Vec<FieldSpec>, Vec<usize>)> = HashMap::new();
    for (index, point) in config.points.iter().enumerate() {
        // Each field alone first, so an error names the device's point.
        Layout::compile(vec![point.field.clone()]).map_err(|e| {
            EngineError::Layout(crate::Error::Layout(format!(
                "device {:?} point {index}: {e}",
                config.id
            )))
        })?;
        let quantity = if point.function.reads_bits() {
            if !point.field.data_type.is_integer() {
                return Err(bad(format!(
                    "point {index}: a coil or discrete input is a bit; give it an integer type, not {}",
                    point.field.data_type.name()
                )));
            }
            1
        } else {
            let (fields, points) = grouped.entry(point.function).or_default();
            fields.push(point.field.clone());
            points.push(index);
            point.field.registers()
        };
        spans.push(PointSpan {
            function: point.function,
            address: point.field.address,
            quantity,
            identification: point.identification,
        });
    }
    let plan = Plan::new(&spans, config.limits).map_err(|e| bad(e.0))?;
    let mut groups = Vec::new();
    let mut functions: Vec<_> = grouped.into_iter().collect();
    functions.sort_by_key(|(function, _)| *function);
    for (function, (fields, points)) in functions {
        let layout = Layout::compile(fields).map_err(EngineError::Layout)?;
        groups.push(LayoutGroup::new(function, layout, points));
    }
    Ok(Template {
        plan: Arc::new(plan),
        groups,
        point_addresses: config.points.iter().map(|p| p.field.address).collect(),
    })
}

#[cfg(test)]
mod tests {
    //! The engine against a real tokio-modbus TCP server on 127.0.0.1.

    use std::future::Future;
    use std::net::SocketAddr;
    use std::pin::Pin;
    use std::sync::Arc;

    use tokio::net::TcpListener;
    use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
    use tokio_modbus::server::Service;
    use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

    use super::*;
    use crate::decode::{DataType, WordOrder};
    use crate::modbus::{DeviceState, RegisterRange};

    /// Unit 1: holding register k holds k, except those written; coil k is k odd.
    /// Unit 2: like unit 1, but has no register 7 (0x02 for any read over it).
    /// Unit 3: answers like unit 1 after 300 ms; unit 4 after 30 ms.
    #[derive(Clone)]
    struct Memory(Arc<std::sync::Mutex<Vec<u16>>>);

    type Answer = Pin<Box<dyn Future<Output = Result<Response, ExceptionCode>> + Send>>;

    impl Service for Memory {
        type Request = SlaveRequest<'static>;
        type Response = Response;
        type Exception = ExceptionCode;
        type Future = Answer;

        fn call(&self, req: Self::Request) -> Self::Future {
            let memory = Arc::clone(&self.0);
            Box::pin(async move {
                match req.slave {
                    3 => tokio::time::sleep(Duration::from_millis(300)).await,
                    4 => tokio::time::sleep(Duration::from_millis(30)).await,
                    _ => {}
                }
                let registers = memory.lock().unwrap();
                match req.request {
                    Request::ReadHoldingRegisters(start, n)
                    | Request::ReadInputRegisters(start, n) => {
                        let range = usize::from(start)..usize::from(start) + usize::from(n);
                        if range.end > registers.len() || (req.slave == 2 && range.contains(&7)) {
                            return Err(ExceptionCode::IllegalDataAddress);
                        }
                        let words = registers[range].to_vec();
                        Ok(match req.request {
                            Request::ReadHoldingRegisters(..) => {
                                Response::ReadHoldingRegisters(words)
                            }
                            _ => Response::ReadInputRegisters(words),
                        })
                    }
                    Request::ReadCoils(start, n) => Ok(Response::ReadCoils(
                        (start..start + n).map(|k| k % 2 == 1).collect(),
                    )),
                    Request::WriteSingleRegister(address, value) => {
                        drop(registers);
                        memory.lock().unwrap()[usize::from(address)] = value;
                        Ok(Response::WriteSingleRegister(address, value))
                    }
                    _ => Err(ExceptionCode::IllegalFunction),
                }
            })
        }
    }

    /// A server runtime on its own thread, and its address.
    fn serve() -> (tokio::runtime::Runtime, SocketAddr, Memory) {
        serve_on("127.0.0.1:0")
    }

    fn serve_on(address: &str) -> (tokio::runtime::Runtime, SocketAddr, Memory) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let memory = Memory(Arc::new(std::sync::Mutex::new((0..200).collect())));
        let listener = runtime.block_on(TcpListener::bind(address)).unwrap();
        let address = listener.local_addr().unwrap();
        let service = memory.clone();
        runtime.spawn(async move {
            let server = Server::new(listener);
            let new_service = move |_| Ok(Some(service.clone()));
            let on_connected = |stream, socket_addr| {
                let new_service = new_service.clone();
                async move { accept_tcp_connection(stream, socket_addr, new_service) }
            };
            let _ = server.serve(&on_connected, |_| {}).await;
        });
        (runtime, address, memory)
    }

    fn device(
        id: &str,
        address: SocketAddr,
        unit: UnitId,
        points: Vec<PointConfig>,
    ) -> DeviceConfig {
        DeviceConfig {
            id: id.into(),
            transport: Transport::Tcp {
                host: address.ip().to_string(),
                port: address.port(),
            },
            unit_id: unit,
            period: Duration::from_millis(100),
            timeout: Duration::from_millis(150),
            retries: 1,
            limits: PlanLimits::default(),
            points,
        }
    }

    fn holding(address: u16, data_type: DataType) -> PointConfig {
        PointConfig::new(
            ReadFunction::HoldingRegisters,
            FieldSpec::new(address, data_type),
        )
    }

    fn wait_for(engine: &Engine, what: impl Fn(&Engine) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !what(engine) {
            assert!(std::time::Instant::now() < deadline, "timed out waiting");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn polls_decodes_and_aligns_to_the_clock() {
        let (_server, address, _) = serve();
        let engine = Engine::new();
        let mut swapped = FieldSpec::new(20, DataType::Uint32);
        swapped.order = WordOrder::Cdab;
        let mut scaled = FieldSpec::new(30, DataType::Int16);
        scaled.scale = 0.5;
        let points = vec![
            holding(5, DataType::Uint16),
            holding(10, DataType::Uint32),
            PointConfig::new(ReadFunction::HoldingRegisters, swapped),
            PointConfig::new(ReadFunction::HoldingRegisters, scaled),
            PointConfig::new(ReadFunction::Coils, FieldSpec::new(7, DataType::Uint16)),
            PointConfig::new(ReadFunction::Coils, FieldSpec::new(8, DataType::Uint16)),
        ];
        let mut text = FieldSpec::new(65, DataType::Ascii);
        text.length = 2;
        let mut points = points;
        points.push(PointConfig::new(ReadFunction::HoldingRegisters, text));
        engine.add_device(device("m1", address, 1, points)).unwrap();
        assert_eq!(engine.point_count(), 7);
        engine.start().unwrap();
        wait_for(&engine, |e| e.diagnostics()[0].cycles >= 3);
        let snapshot = engine.snapshot();
        assert_eq!(snapshot.valid, [vec![true; 6], vec![false]].concat());
        // Registers 65, 66 hold 0x0041, 0x0042: "\0A\0B".
        assert_eq!(engine.texts(), vec![(6, "\0A\0B".to_string())]);
        assert_eq!(
            snapshot.integers[..3],
            [5, (10 << 16) | 11, (21 << 16) | 20]
        );
        assert_eq!(snapshot.values[3], 15.0);
        assert_eq!(snapshot.integers[4..6], [1, 0]);
        for read_at in &snapshot.read_at_ms[..6] {
            // Sent on the 100 ms tick (within half a period, for a loaded machine).
            assert!(read_at % 100 < 50, "read at {read_at}");
        }
        let diag = &engine.diagnostics()[0];
        assert_eq!(diag.state, DeviceState::Ok);
        assert_eq!(diag.reads_per_cycle, 3, "two register reads, one coil read");
        assert!(diag.last_cycle_duration >= diag.rtt.last);
        assert!(diag.rtt.max > Duration::ZERO && diag.errors == 0);
        engine.stop();
        assert!(!engine.is_running());
    }

    #[test]
    fn an_unsupported_register_costs_only_its_own_point() {
        let (_server, address, _) = serve();
        let engine = Engine::new();
        let points: Vec<_> = (0..12).map(|k| holding(k, DataType::Uint16)).collect();
        engine
            .add_device(device("m2", address, 2, points.clone()))
            .unwrap();
        // The same model on a unit that has every register: it shares the
        // compiled template, but not the split.
        engine.add_device(device("m1", address, 1, points)).unwrap();
        engine.start().unwrap();
        wait_for(&engine, |e| e.diagnostics().iter().all(|d| d.cycles >= 3));
        let snapshot = engine.snapshot();
        for k in 0..12 {
            assert_eq!(snapshot.valid[k], k != 7, "point {k}");
            if k != 7 {
                assert_eq!(snapshot.integers[k], k as i64);
            }
            assert_eq!(snapshot.integers[12 + k], k as i64);
        }
        let whole = &engine.diagnostics()[1];
        assert_eq!((whole.reads_per_cycle, whole.errors), (1, 0));
        // The raw blocks as answered: register 7's own read got none.
        let raw = engine.raw_blocks("m2").unwrap();
        let missing: Vec<_> = raw.iter().filter(|b| b.registers.is_none()).collect();
        assert_eq!(missing.len(), 1);
        assert_eq!((missing[0].start, missing[0].quantity), (7, 1));
        let whole = engine.raw_blocks("m1").unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(whole[0].registers, Some((0..12).collect()));
        assert!(engine.raw_blocks("nope").is_err());
        let diag = &engine.diagnostics()[0];
        assert_eq!(diag.state, DeviceState::Ok);
        let last = diag.last_error.as_ref().unwrap();
        assert_eq!(
            (last.code, last.name.as_str()),
            (Some(2), "IllegalDataAddress")
        );
        // The split and the missing register are remembered: later cycles
        // send no failing read, and the diagnostics say what is missing.
        assert_eq!(
            diag.lacking,
            vec![RegisterRange {
                function: ReadFunction::HoldingRegisters,
                address: 7,
                count: 1
            }]
        );
        let (exceptions, requests, cycles) = (diag.exceptions, diag.requests, diag.cycles);
        wait_for(&engine, |e| e.diagnostics()[0].cycles >= cycles + 3);
        let diag = &engine.diagnostics()[0];
        assert_eq!(diag.exceptions, exceptions);
        let reads = diag.reads_per_cycle as u64 - 1;
        assert_eq!(diag.requests - requests, reads * (diag.cycles - cycles));
        assert!(!engine.snapshot().valid[7]);
    }

    #[test]
    fn identification_is_read_once_per_connection() {
        let (_server, address, memory) = serve();
        let engine = Engine::new();
        let mut name = FieldSpec::new(65, DataType::Ascii);
        name.length = 2;
        let mut points = vec![
            holding(5, DataType::Uint16),
            PointConfig::new(ReadFunction::HoldingRegisters, name),
            holding(150, DataType::Uint16),
        ];
        points[1].identification = true;
        points[2].identification = true;
        engine.add_device(device("m", address, 1, points)).unwrap();
        engine.start().unwrap();
        wait_for(&engine, |e| e.diagnostics()[0].cycles >= 4);
        let diag = &engine.diagnostics()[0];
        // Three reads in the plan (5; 65..67; 150), the last two once.
        assert_eq!(diag.reads_per_cycle, 3);
        assert_eq!(diag.requests, diag.cycles + 2, "{diag:?}");
        // Kept and shown every cycle, though read once.
        memory.0.lock().unwrap()[150] = 999;
        let cycles = diag.cycles;
        wait_for(&engine, |e| e.diagnostics()[0].cycles >= cycles + 2);
        let snapshot = engine.snapshot();
        // A text is not a number: its value is not valid, its text is.
        assert_eq!(snapshot.valid, vec![true, false, true]);
        assert_eq!(snapshot.integers[2], 150, "not read again");
        assert_eq!(engine.texts(), vec![(1, "\0A\0B".to_string())]);
        assert!(snapshot.read_at_ms[1] >= snapshot.read_at_ms[0] - 100);
        let raw = engine.raw_blocks("m").unwrap();
        assert!(raw.iter().all(|b| b.registers.is_some()));
    }

    #[test]
    fn dead_and_slow_devices_never_delay_a_healthy_one() {
        let (server, address, _) = serve();
        // Nothing listens here.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        // Accepts and never answers.
        let mute = server.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let mute_address = mute.local_addr().unwrap();
        server.spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = mute.accept().await {
                held.push(stream);
            }
        });
        let engine = Engine::new();
        let points = || vec![holding(0, DataType::Uint16)];
        engine
            .add_device(device("healthy", address, 1, points()))
            .unwrap();
        engine
            .add_device(device("dead", dead, 1, points()))
            .unwrap();
        engine
            .add_device(device("mute", mute_address, 1, points()))
            .unwrap();
        // Slow (300 ms for a 100 ms period, 150 ms timeout) behind its own endpoint.
        let (_other, other_address, _) = serve();
        engine
            .add_device(device("slow", other_address, 3, points()))
            .unwrap();
        engine.start().unwrap();
        std::thread::sleep(Duration::from_millis(1200));
        let now = crate::modbus::unix_ms();
        let snapshot = engine.snapshot();
        assert!(snapshot.valid[0]);
        assert!(
            now - snapshot.read_at_ms[0] < 250,
            "healthy read {} ms ago",
            now - snapshot.read_at_ms[0]
        );
        assert!(!snapshot.valid[1] && !snapshot.valid[2] && !snapshot.valid[3]);
        let diagnostics = engine.diagnostics();
        assert!(diagnostics[0].cycles >= 9, "{:?}", diagnostics[0]);
        assert_eq!(diagnostics[0].overruns, 0);
        assert_eq!(diagnostics[0].state, DeviceState::Ok);
        let kind = |i: usize| diagnostics[i].last_error.as_ref().map(|e| e.kind);
        assert_eq!(kind(1), Some("transport"));
        assert_eq!(kind(2), Some("timeout"));
        assert_eq!(kind(3), Some("timeout"));
        for failing in &diagnostics[1..] {
            assert_ne!(failing.state, DeviceState::Ok, "{failing:?}");
        }
        assert_eq!(diagnostics[1].state, DeviceState::Offline);
    }

    #[test]
    fn writes_reach_the_device() {
        let (_server, address, memory) = serve();
        let engine = Engine::new();
        engine
            .add_device(device(
                "io",
                address,
                1,
                vec![holding(40, DataType::Uint16)],
            ))
            .unwrap();
        assert_eq!(
            engine.write("io", WriteRequest::SingleRegister(40, 2)),
            Err(EngineError::NotRunning)
        );
        engine.start().unwrap();
        engine
            .write("io", WriteRequest::SingleRegister(40, 2))
            .unwrap();
        assert_eq!(memory.0.lock().unwrap()[40], 2);
        wait_for(&engine, |e| e.snapshot().integers[0] == 2);
        let refused = engine
            .write("io", WriteRequest::SingleCoil(1, true))
            .unwrap_err();
        assert_eq!(
            refused,
            EngineError::Request(RequestError::Exception(ExceptionCode::IllegalFunction))
        );
        assert!(matches!(
            engine.write("nope", WriteRequest::SingleRegister(0, 0)),
            Err(EngineError::UnknownDevice(_))
        ));
    }

    #[test]
    fn a_write_jumps_ahead_of_a_long_poll_cycle() {
        let (_server, address, memory) = serve();
        let engine = Engine::new();
        // Ten reads of 30 ms each: a 300 ms cycle, every 400 ms.
        let mut config = device(
            "io",
            address,
            4,
            (0..10).map(|k| holding(10 * k, DataType::Uint16)).collect(),
        );
        config.limits.max_gap = 0;
        config.period = Duration::from_millis(400);
        config.timeout = Duration::from_millis(500);
        engine.add_device(config).unwrap();
        engine.start().unwrap();
        // Land in the middle of a cycle.
        wait_for(&engine, |e| e.diagnostics()[0].cycles >= 1);
        let tick = engine.diagnostics()[0].last_cycle_ms.unwrap() + 400;
        while crate::modbus::unix_ms() < tick + 100 {
            std::thread::sleep(Duration::from_millis(5));
        }
        let started = std::time::Instant::now();
        engine
            .write("io", WriteRequest::SingleRegister(199, 9))
            .unwrap();
        let waited = started.elapsed();
        assert_eq!(memory.0.lock().unwrap()[199], 9);
        // At most the read on the wire, then the write itself: not the cycle's 200 ms left.
        assert!(waited < Duration::from_millis(120), "waited {waited:?}");
    }

    #[test]
    fn a_write_tries_to_connect_even_while_reconnection_backs_off() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        let engine = Engine::new();
        let points = vec![holding(0, DataType::Uint16)];
        engine.add_device(device("gone", dead, 1, points)).unwrap();
        engine.start().unwrap();
        // Polling has met the backoff: reconnection waits (100 ms, doubling).
        wait_for(&engine, |e| {
            e.diagnostics()[0]
                .last_error
                .as_ref()
                .is_some_and(|last| last.message.contains("next attempt"))
        });
        let err = engine
            .write("gone", WriteRequest::SingleRegister(0, 1))
            .unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }

    #[test]
    fn a_dead_device_recovers_when_it_comes_back() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = closed.local_addr().unwrap();
        drop(closed);
        let engine = Engine::new();
        let points = vec![holding(3, DataType::Uint16)];
        engine
            .add_device(device("back", address, 1, points))
            .unwrap();
        engine.start().unwrap();
        wait_for(&engine, |e| {
            e.diagnostics()[0].state == DeviceState::Offline
        });
        assert!(!engine.snapshot().valid[0]);
        let _server = serve_on(&address.to_string());
        // Reconnection and polling back off while it is away, by at most seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(8);
        while engine.diagnostics()[0].state != DeviceState::Ok {
            assert!(
                std::time::Instant::now() < deadline,
                "{:?}",
                engine.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let snapshot = engine.snapshot();
        assert!(snapshot.valid[0]);
        assert_eq!(snapshot.integers[0], 3);
    }

    #[test]
    fn cycles_longer_than_the_period_are_counted_as_overruns() {
        let (_server, address, _) = serve();
        let engine = Engine::new();
        // Unit 3 answers in 300 ms: each 100 ms cycle overruns two ticks.
        let mut config = device("slow", address, 3, vec![holding(0, DataType::Uint16)]);
        config.timeout = Duration::from_secs(1);
        engine.add_device(config).unwrap();
        engine.start().unwrap();
        wait_for(&engine, |e| e.diagnostics()[0].cycles >= 3);
        let diag = &engine.diagnostics()[0];
        assert_eq!(diag.state, DeviceState::Ok);
        assert!(diag.overruns >= 2 * (diag.cycles - 1), "{diag:?}");
        assert!(engine.snapshot().valid[0]);
    }

    #[test]
    fn bad_devices_are_refused_with_a_reason() {
        let engine = Engine::new();
        let address: SocketAddr = "127.0.0.1:502".parse().unwrap();
        engine
            .add_device(device("a", address, 1, vec![holding(0, DataType::Float32)]))
            .unwrap();
        let twice = engine
            .add_device(device("a", address, 1, vec![]))
            .unwrap_err();
        assert!(twice.to_string().contains("used twice"), "{twice}");
        let mut bad_field = FieldSpec::new(0, DataType::Bitmap);
        bad_field.bits = 17;
        let layout = engine
            .add_device(device(
                "b",
                address,
                1,
                vec![PointConfig::new(ReadFunction::HoldingRegisters, bad_field)],
            ))
            .unwrap_err();
        assert!(matches!(layout, EngineError::Layout(_)), "{layout}");
        assert!(layout.to_string().contains("point 0"), "{layout}");
        let float_coil = engine
            .add_device(device(
                "c",
                address,
                1,
                vec![PointConfig::new(
                    ReadFunction::Coils,
                    FieldSpec::new(0, DataType::Float32),
                )],
            ))
            .unwrap_err();
        assert!(
            float_coil.to_string().contains("integer type"),
            "{float_coil}"
        );
        let mut rtu_over_tcp = device("d", address, 1, vec![]);
        rtu_over_tcp.transport = Transport::RtuOverTcp {
            host: "127.0.0.1".into(),
            port: 502,
        };
        let clash = engine.add_device(rtu_over_tcp).unwrap_err();
        assert!(clash.to_string().contains("other settings"), "{clash}");
        engine.start().unwrap();
        assert!(engine.start().is_err());
        assert!(engine.add_device(device("e", address, 1, vec![])).is_err());
    }
}
