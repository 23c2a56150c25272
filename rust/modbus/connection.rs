//! A link's connection: opened on demand, reopened with exponential backoff,
//! one request at a time with a timeout, and the silence an RTU bus needs
//! between frames.

use std::io;
use std::pin::Pin;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_modbus::client::{rtu, tcp, Context};
use tokio_modbus::prelude::{Client, SlaveContext};
use tokio_modbus::{Request, Response, Slave};
use tokio_serial::SerialPortBuilderExt;

use super::config::{Parity, SerialConfig};
use super::schedule::Backoff;
use super::{LinkError, Outcome, UnitId};

/// Where a link connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    Tcp(String, u16),
    RtuOverTcp(String, u16),
    Serial(SerialConfig),
}

/// A link's connection, opened on demand and reopened with backoff.
pub(crate) struct Connection {
    endpoint: Endpoint,
    context: Option<Context>,
    backoff: Backoff,
    /// After a failed connection attempt: when to try again, and why it failed.
    retry_at: Option<(Instant, String)>,
    /// RTU: the 3.5-character silence that separates frames on the bus.
    frame_gap: Duration,
    quiet_since: Instant,
    /// Connections opened so far: what tells a device that the link reconnected.
    opened: u64,
    /// Each request's timeout: one timer, moved on before every request of a
    /// cycle. A timer made per request is put into the runtime's timer wheel
    /// and taken out again each time; moving a timer's deadline later costs
    /// nothing until it comes due. Dropped by [`Connection::rest`] (else it
    /// would come due after the cycle and wake the link for nothing).
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    pub fn new(endpoint: Endpoint) -> Connection {
        let frame_gap = match &endpoint {
            Endpoint::Serial(serial) => serial.frame_gap(),
            _ => Duration::ZERO,
        };
        Connection {
            endpoint,
            context: None,
            backoff: Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            retry_at: None,
            frame_gap,
            quiet_since: Instant::now(),
            opened: 0,
            deadline: None,
        }
    }

    async fn open(endpoint: &Endpoint) -> io::Result<Context> {
        match endpoint {
            Endpoint::Tcp(host, port) => Ok(tcp::attach(tcp_connect(host, *port).await?)),
            Endpoint::RtuOverTcp(host, port) => Ok(rtu::attach(tcp_connect(host, *port).await?)),
            Endpoint::Serial(serial) => {
                let port = tokio_serial::new(&serial.path, serial.baud_rate)
                    .data_bits(match serial.data_bits {
                        7 => tokio_serial::DataBits::Seven,
                        _ => tokio_serial::DataBits::Eight,
                    })
                    .parity(match serial.parity {
                        Parity::None => tokio_serial::Parity::None,
                        Parity::Even => tokio_serial::Parity::Even,
                        Parity::Odd => tokio_serial::Parity::Odd,
                    })
                    .stop_bits(match serial.stop_bits {
                        2 => tokio_serial::StopBits::Two,
                        _ => tokio_serial::StopBits::One,
                    })
                    .open_native_async()
                    .map_err(|e| io::Error::other(format!("{}: {e}", serial.path)))?;
                Ok(rtu::attach(port))
            }
        }
    }

    async fn connect(&mut self, timeout: Duration) -> Result<(), LinkError> {
        if let Some((at, why)) = &self.retry_at {
            let now = Instant::now();
            if now < *at {
                return Err(LinkError::Transport(format!(
                    "not connected ({why}); next attempt in {} ms",
                    (*at - now).as_millis()
                )));
            }
        }
        let failure = match tokio::time::timeout(timeout, Connection::open(&self.endpoint)).await {
            Ok(Ok(context)) => {
                self.context = Some(context);
                self.opened += 1;
                self.retry_at = None;
                self.backoff.reset();
                return Ok(());
            }
            Ok(Err(e)) => format!("cannot connect: {e}"),
            Err(_) => format!(
                "cannot connect: no answer within {} ms",
                timeout.as_millis()
            ),
        };
        let delay = self.backoff.next_delay();
        self.retry_at = Some((Instant::now() + delay, failure.clone()));
        Err(LinkError::Transport(failure))
    }

    /// Send one request and wait for its answer (with its round-trip time).
    pub async fn call(
        &mut self,
        unit: UnitId,
        request: Request<'_>,
        timeout: Duration,
    ) -> Outcome<(Response, Duration)> {
        if !self.frame_gap.is_zero() {
            tokio::time::sleep_until(self.quiet_since + self.frame_gap).await;
        }
        if self.context.is_none() {
            self.connect(timeout).await?;
        }
        let Some(context) = self.context.as_mut() else {
            return Err(LinkError::Transport("not connected".into()));
        };
        context.set_slave(Slave(unit));
        let sent = Instant::now();
        let deadline = match &mut self.deadline {
            Some(deadline) => {
                deadline.as_mut().reset(sent + timeout);
                deadline
            }
            None => self
                .deadline
                .insert(Box::pin(tokio::time::sleep_until(sent + timeout))),
        };
        let outcome = tokio::select! {
            biased;
            answer = context.call(request) => Ok(answer),
            () = deadline.as_mut() => Err(LinkError::Timeout),
        };
        let answered = Instant::now();
        let rtt = answered - sent;
        self.quiet_since = answered;
        // After a timeout or a mismatched answer a TCP stream may still carry
        // a late or partial frame: start again on a fresh connection. A serial
        // port stays open (closing it would drop the bus for every device on
        // it): the client clears its buffer before each request and the RTU
        // decoder resynchronises on the next valid frame.
        let reopen = !matches!(self.endpoint, Endpoint::Serial(_));
        match outcome {
            Ok(Ok(answer)) => Ok(answer.map(|response| (response, rtt))),
            Ok(Err(tokio_modbus::Error::Transport(e))) => {
                self.context = None;
                Err(LinkError::Transport(e.to_string()))
            }
            Ok(Err(tokio_modbus::Error::Protocol(e))) => {
                if reopen {
                    self.context = None;
                }
                Err(LinkError::Protocol(e.to_string()))
            }
            Err(timeout) => {
                if reopen {
                    self.context = None;
                }
                Err(timeout)
            }
        }
    }

    /// The link has nothing to send until its next cycle: the request timer
    /// goes (see `deadline`).
    pub fn rest(&mut self) {
        self.deadline = None;
    }

    /// The number of the connection the next request goes on: the one open,
    /// or the next one to open. It changes when the link reconnects, which is
    /// when a device's identification and its missing registers are asked anew.
    pub fn next_session(&self) -> u64 {
        self.opened + u64::from(self.context.is_none())
    }

    /// Let the next request try to connect at once, even while reconnection
    /// is backing off (a command must not wait for the next attempt).
    pub fn retry_now(&mut self) {
        self.retry_at = None;
    }
}

/// Connect without a name lookup when the host is an address: a lookup takes
/// a blocking thread, and a hundred devices reconnecting at once would take a
/// hundred of them.
async fn tcp_connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let stream = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => TcpStream::connect((ip, port)).await?,
        Err(_) => TcpStream::connect((host, port)).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}
