//! A lean Modbus TCP server for the acquisition benchmark (`benches/acquire.py`).
//!
//! `modbus_bench_server <listeners>` opens that many listeners on 127.0.0.1
//! (ports chosen by the system), prints their ports as one JSON line, and
//! serves function 3 and 4 reads from one register image (FLOAT32 values,
//! big-endian) until its standard input closes. It runs on one thread, so
//! the benchmark's clients, not the server, are what is measured.

use std::future;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response};

#[derive(Clone)]
struct Image(Arc<Vec<u16>>);

impl Service for Image {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, request: Self::Request) -> Self::Future {
        let read = |start: u16, count: u16| {
            let range = usize::from(start)..usize::from(start) + usize::from(count);
            self.0.get(range).map(<[u16]>::to_vec)
        };
        future::ready(match request {
            Request::ReadHoldingRegisters(start, count) => read(start, count)
                .map(Response::ReadHoldingRegisters)
                .ok_or(ExceptionCode::IllegalDataAddress),
            Request::ReadInputRegisters(start, count) => read(start, count)
                .map(Response::ReadInputRegisters)
                .ok_or(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

fn main() -> std::io::Result<()> {
    let listeners: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    // Register 2k, 2k+1: the FLOAT32 value 200 + k/1000, high word first.
    let mut words = Vec::with_capacity(65_536);
    for k in 0..32_768u32 {
        let bits = (200.0f32 + k as f32 / 1000.0).to_bits();
        words.extend([(bits >> 16) as u16, bits as u16]);
    }
    let image = Image(Arc::new(words));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let mut ports = Vec::with_capacity(listeners);
        for _ in 0..listeners {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            ports.push(listener.local_addr()?.port());
            let image = image.clone();
            tokio::spawn(async move {
                let new_service = move |_: SocketAddr| Ok(Some(image.clone()));
                let on_connected = |stream, socket_addr| {
                    let new_service = new_service.clone();
                    async move { accept_tcp_connection(stream, socket_addr, new_service) }
                };
                let _ = Server::new(listener).serve(&on_connected, |_| {}).await;
            });
        }
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        println!("[{}]", ports.join(","));
        // Serve until the benchmark closes our standard input (or dies).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .map_err(std::io::Error::other)
    })
}
