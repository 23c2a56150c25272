//! A lean Modbus TCP server for the acquisition benchmark (`benches/acquire.py`).
//!
//! `modbus_bench_server <listeners>` opens that many listeners on 127.0.0.1
//! (ports chosen by the system), prints their ports as one JSON line, and
//! serves function 3 and 4 reads from one register image (FLOAT32 values,
//! big-endian) until its standard input closes.
//!
//! Like the loopback floor's server (`benches/loopback_floor.rs`) it does one
//! `read` of a whole request and one `write` of a whole answer, with no
//! allocation per request, so the benchmark's clients, not the server, are
//! what is measured. Unlike it, one thread serves every connection (a
//! single-threaded tokio runtime): when a hundred devices are read at once,
//! their requests find the server awake and are answered in a batch, as a
//! network's devices would be, instead of each request waking a thread of
//! its own, which on loopback the client's `write` pays for. Requests are
//! checked as a device checks them (protocol id, length, function,
//! quantity, range), with the exception responses a device gives.

use std::io::{Read as _, Write as _};
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// MBAP header (7 bytes) + function + the largest request body we accept.
const MAX_FRAME: usize = 260;

/// Registers 2k and 2k+1 hold the FLOAT32 value 200 + k/1000, high word first,
/// as big-endian bytes ready to copy into an answer.
fn image() -> Vec<u8> {
    let mut bytes = Vec::with_capacity(2 * 65_536);
    for k in 0..32_768u32 {
        let value = 200.0f32 + k as f32 / 1000.0;
        bytes.extend(value.to_bits().to_be_bytes());
    }
    bytes
}

/// The answer to one request (without its MBAP header) into `answer`.
fn respond(request: &[u8], image: &[u8], answer: &mut Vec<u8>) {
    answer.clear();
    let function = request[0];
    let exception = |answer: &mut Vec<u8>, code: u8| answer.extend([function | 0x80, code]);
    if !matches!(function, 3 | 4) {
        return exception(answer, 0x01);
    }
    let [_, start_hi, start_lo, count_hi, count_lo] = request[..] else {
        return exception(answer, 0x03);
    };
    let start = usize::from(u16::from_be_bytes([start_hi, start_lo]));
    let count = usize::from(u16::from_be_bytes([count_hi, count_lo]));
    if !(1..=125).contains(&count) {
        return exception(answer, 0x03);
    }
    match image.get(2 * start..2 * (start + count)) {
        Some(registers) => {
            answer.extend([function, (2 * count) as u8]);
            answer.extend_from_slice(registers);
        }
        None => exception(answer, 0x02),
    }
}

/// Serve one connection until the client closes it or sends a bad frame.
async fn serve(mut stream: TcpStream, image: Arc<Vec<u8>>) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut frame = [0u8; MAX_FRAME];
    let mut held = 0; // bytes of the next request(s) already read
    let mut body = Vec::with_capacity(MAX_FRAME);
    let mut answer = Vec::with_capacity(MAX_FRAME);
    loop {
        // A whole header, then the whole frame it announces.
        let length = loop {
            if held >= 6 {
                let length = usize::from(u16::from_be_bytes([frame[4], frame[5]]));
                if !(2..=MAX_FRAME - 6).contains(&length) || frame[2..4] != [0, 0] {
                    return Ok(()); // not Modbus TCP: hang up, as a device does
                }
                if held >= 6 + length {
                    break length;
                }
            }
            match stream.read(&mut frame[held..]).await? {
                0 => return Ok(()),
                n => held += n,
            }
        };
        respond(&frame[7..6 + length], &image, &mut body);
        answer.clear();
        // Transaction and protocol id as asked, the length, the unit id.
        answer.extend_from_slice(&frame[0..4]);
        answer.extend(u16::try_from(body.len() + 1).unwrap_or(0).to_be_bytes());
        answer.push(frame[6]);
        answer.extend_from_slice(&body);
        stream.write_all(&answer).await?;
        frame.copy_within(6 + length..held, 0);
        held -= 6 + length;
    }
}

fn main() -> std::io::Result<()> {
    let listeners: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let image = Arc::new(image());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async move {
        let mut ports = Vec::with_capacity(listeners);
        for _ in 0..listeners {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            ports.push(listener.local_addr()?.port().to_string());
            let image = Arc::clone(&image);
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(serve(stream, Arc::clone(&image)));
                }
            });
        }
        println!("[{}]", ports.join(","));
        std::io::stdout().flush()?;
        // Serve until the benchmark closes our standard input (or dies).
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        })
        .await
        .map_err(std::io::Error::other)
    })
}
