//! Modbus TCP front of the simulator: one listener per port, routing each
//! request by unit id to its device.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::device::{Command, Device};
use super::{now_ms, Bound, ListenerSpec, Shared};
use crate::Error;

/// Most bits one read may ask for (Modbus application protocol, §6.1).
const MAX_BITS_PER_READ: u16 = 2000;

type Answer = Result<Option<Response>, ExceptionCode>;

/// The service behind one listener.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) shared: Arc<Shared>,
    /// Device index for each unit id.
    pub(crate) units: Arc<[Option<u32>; 256]>,
    pub(crate) silent_when_absent: bool,
    /// The devices behind this listener.
    pub(crate) members: Arc<[u32]>,
}

impl Listener {
    /// Whether every device behind this listener is powered off.
    fn all_offline(&self) -> bool {
        !self.members.is_empty()
            && self
                .members
                .iter()
                .all(|&k| self.shared.devices[k as usize].faults().offline)
    }

    /// Until every device behind the listener is (or not) offline; costs nothing meanwhile.
    async fn wait_until(&self, offline: bool) {
        loop {
            // Registered before checking, so a change in between is not missed.
            let changed = self.shared.faults_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.all_offline() == offline {
                return;
            }
            changed.await;
        }
    }
}

impl Service for Listener {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let Some(index) = self.units[usize::from(req.slave)] else {
            // Nobody behind this unit id: a Modbus gateway answers 0x0B.
            let answer = if self.silent_when_absent {
                Ok(None)
            } else {
                Err(ExceptionCode::GatewayTargetDevice)
            };
            return Box::pin(std::future::ready(answer));
        };
        let device = &self.shared.devices[index as usize];
        match req.request {
            Request::ReadCoils(a, n) => device.count_read(1, a, n),
            Request::ReadDiscreteInputs(a, n) => device.count_read(2, a, n),
            Request::ReadHoldingRegisters(a, n) => device.count_read(3, a, n),
            Request::ReadInputRegisters(a, n) => device.count_read(4, a, n),
            ref request if is_write(request) => device.count_write(),
            _ => {}
        }
        let faults = device.faults();
        if faults.dead || faults.offline {
            return Box::pin(std::future::ready(Ok(None)));
        }
        let answer = if device.draw_busy(faults.busy_fraction) {
            Err(ExceptionCode::ServerDeviceBusy)
        } else {
            answer(device, &req.request, &faults.illegal, self.shared.tick_ms)
        };
        if faults.latency_ms == 0 {
            Box::pin(std::future::ready(answer))
        } else {
            let delay = Duration::from_millis(u64::from(faults.latency_ms));
            Box::pin(async move {
                tokio::time::sleep(delay).await;
                answer
            })
        }
    }
}

/// Whether a request writes (what a test counts to prove nothing was written).
fn is_write(request: &Request<'_>) -> bool {
    matches!(
        request,
        Request::WriteSingleCoil(..)
            | Request::WriteMultipleCoils(..)
            | Request::WriteSingleRegister(..)
            | Request::WriteMultipleRegisters(..)
            | Request::MaskWriteRegister(..)
            | Request::ReadWriteMultipleRegisters(..)
    )
}

fn answer(
    device: &Device,
    request: &Request<'_>,
    illegal: &[(u8, u16, u16)],
    tick_ms: i64,
) -> Answer {
    let touches_illegal = |fc: u8, address: u16, count: u16| {
        let (lo, hi) = (u32::from(address), u32::from(address) + u32::from(count));
        illegal
            .iter()
            .any(|&(f, a, n)| f == fc && lo < u32::from(a) + u32::from(n) && u32::from(a) < hi)
    };
    let read = |fc: u8, address: u16, count: u16| -> Result<Vec<u16>, ExceptionCode> {
        let limit = if fc <= 2 {
            MAX_BITS_PER_READ
        } else {
            device.model.spec.max_registers_per_read.min(125)
        };
        if count == 0 || count > limit {
            return Err(ExceptionCode::IllegalDataValue);
        }
        if u32::from(address) + u32::from(count) > 0x1_0000 || touches_illegal(fc, address, count) {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let mut out = Vec::with_capacity(usize::from(count));
        device.read(fc, address, count, now_ms(), tick_ms, &mut out);
        Ok(out)
    };
    let bits = |words: Vec<u16>| words.into_iter().map(|w| w != 0).collect::<Vec<bool>>();
    let write = |address: u16, values: &[u16]| -> Result<(), ExceptionCode> {
        let mut any = false;
        for (k, &value) in values.iter().enumerate() {
            let Some(at) = address.checked_add(k as u16) else {
                return Err(ExceptionCode::IllegalDataAddress);
            };
            match device.command(at, value, now_ms()) {
                Command::Done => any = true,
                Command::BadValue => return Err(ExceptionCode::IllegalDataValue),
                Command::Busy => return Err(ExceptionCode::ServerDeviceBusy),
                Command::NotAnOutput => {}
            }
        }
        if any {
            Ok(())
        } else {
            Err(ExceptionCode::IllegalDataAddress)
        }
    };
    Ok(Some(match *request {
        Request::ReadCoils(a, n) => Response::ReadCoils(bits(read(1, a, n)?)),
        Request::ReadDiscreteInputs(a, n) => Response::ReadDiscreteInputs(bits(read(2, a, n)?)),
        Request::ReadHoldingRegisters(a, n) => Response::ReadHoldingRegisters(read(3, a, n)?),
        Request::ReadInputRegisters(a, n) => Response::ReadInputRegisters(read(4, a, n)?),
        Request::WriteSingleRegister(a, v) => {
            write(a, &[v])?;
            Response::WriteSingleRegister(a, v)
        }
        Request::WriteMultipleRegisters(a, ref values) => {
            write(a, values)?;
            Response::WriteMultipleRegisters(a, values.len() as u16)
        }
        _ => return Err(ExceptionCode::IllegalFunction),
    }))
}

/// Open `spec` and serve it on `runtime` (entered by the caller).
pub(crate) fn spawn(
    runtime: &tokio::runtime::Runtime,
    spec: &ListenerSpec,
    service: Listener,
) -> crate::Result<Bound> {
    match spec {
        ListenerSpec::Tcp { host, port } | ListenerSpec::RtuOverTcp { host, port } => {
            let socket = std::net::TcpListener::bind((host.as_str(), *port))
                .and_then(|s| s.set_nonblocking(true).map(|()| s))
                .map_err(|e| Error::Simulator(format!("cannot listen on {host}:{port}: {e}")))?;
            let addr = socket
                .local_addr()
                .map_err(|e| Error::Simulator(format!("listener address: {e}")))?;
            let listener = tokio::net::TcpListener::from_std(socket)
                .map_err(|e| Error::Simulator(format!("listener: {e}")))?;
            let rtu = matches!(spec, ListenerSpec::RtuOverTcp { .. });
            runtime.spawn(serve_tcp_while_powered(listener, addr, service, rtu));
            Ok(Bound::Tcp(addr))
        }
        ListenerSpec::Serial { path, baud_rate } => {
            let open =
                || tokio_serial::SerialStream::open(&tokio_serial::new(path.as_str(), *baud_rate));
            let serial = open()
                .map_err(|e| Error::Simulator(format!("cannot open serial port {path}: {e}")))?;
            runtime.spawn(serve_serial(serial, path.clone(), *baud_rate, service));
            Ok(Bound::Serial(path.clone()))
        }
    }
}

/// Serve while some device behind the port is on; close the port (and every
/// connection) while all are offline, and listen again on the same address.
async fn serve_tcp_while_powered(
    first: tokio::net::TcpListener,
    addr: std::net::SocketAddr,
    service: Listener,
    rtu: bool,
) {
    let mut listener = Some(first);
    loop {
        if let Some(l) = listener.take() {
            // Dropping the server future closes the port and its connections.
            tokio::select! {
                () = serve_tcp(l, service.clone(), rtu) => {}
                () = service.wait_until(true) => {}
            }
        }
        service.wait_until(false).await;
        while listener.is_none() {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => listener = Some(l),
                // The old socket may linger a moment: try again shortly.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
}

async fn serve_tcp(listener: tokio::net::TcpListener, service: Listener, rtu: bool) {
    let on_connected = |stream: tokio::net::TcpStream, _addr| {
        let service = service.clone();
        async move {
            // Answers are single small writes: do not let Nagle hold them.
            stream.set_nodelay(true)?;
            Ok(Some((service, stream)))
        }
    };
    // A client that sends garbage loses its own connection, nothing more.
    let _ = if rtu {
        tokio_modbus::server::rtu_over_tcp::Server::new(listener)
            .serve(&on_connected, |_err| {})
            .await
    } else {
        tokio_modbus::server::tcp::Server::new(listener)
            .serve(&on_connected, |_err| {})
            .await
    };
}

async fn serve_serial(
    first: tokio_serial::SerialStream,
    path: String,
    baud_rate: u32,
    service: Listener,
) {
    let mut serial = Some(first);
    loop {
        if let Some(stream) = serial.take() {
            // Line noise ends this pass (a frame it cannot decode): serve on.
            let _ = tokio_modbus::server::rtu::Server::new(stream)
                .serve_forever(service.clone())
                .await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        serial =
            tokio_serial::SerialStream::open(&tokio_serial::new(path.as_str(), baud_rate)).ok();
    }
}
