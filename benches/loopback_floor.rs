//! The loopback floor for one connection's request rate (`benches/acquire.py`).
//!
//! What no Modbus client on this machine can beat: one TCP connection over
//! loopback, a blocking client writing one request frame and reading one
//! answer frame of the same sizes as a Modbus read, back to back, against a
//! blocking server doing the converse. No framing, no parsing, no event loop,
//! no allocation per request: two `write` and two `read` system calls and the
//! kernel's wake-ups, which is all a request costs at the bottom.
//!
//! Standard library only, so the benchmark builds it with `rustc -O` alone.
//!
//! `loopback_floor serve <answer_bytes>`: listens on 127.0.0.1 (a port the
//! system chooses, printed on one line), answers each `request_bytes` it
//! reads (taken from the first frame's MBAP length) with `answer_bytes`,
//! one connection after another, until its standard input closes.
//!
//! `loopback_floor ping <port> <registers> <seconds> <rounds>`: sends
//! well-formed Modbus TCP reads of `registers` holding registers (12 bytes)
//! and reads answers of 9 + 2 × `registers` bytes, so it also runs against a
//! real Modbus server; prints each round's requests per second, one JSON list.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

const REQUEST_BYTES: usize = 12;

fn serve(answer_bytes: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!("{}", listener.local_addr()?.port());
    std::io::stdout().flush()?;
    // Ends the process when the benchmark closes our standard input.
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    // A valid-looking answer: MBAP (transaction 0, protocol 0, length), unit, function, count.
    let mut answer = vec![0u8; answer_bytes];
    let length = u16::try_from(answer_bytes - 6).unwrap_or(u16::MAX);
    answer[4..6].copy_from_slice(&length.to_be_bytes());
    answer[6] = 1;
    answer[7] = 3;
    answer[8] = u8::try_from(answer_bytes - 9).unwrap_or(u8::MAX);
    for stream in listener.incoming() {
        let mut stream = stream?;
        stream.set_nodelay(true)?;
        let mut request = [0u8; REQUEST_BYTES];
        while stream.read_exact(&mut request).is_ok() {
            // The answer carries the request's transaction id, as a server's does.
            answer[0..2].copy_from_slice(&request[0..2]);
            if stream.write_all(&answer).is_err() {
                break;
            }
        }
    }
    Ok(())
}

fn ping(port: u16, registers: u16, seconds: f64, rounds: usize) -> std::io::Result<()> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_nodelay(true)?;
    let mut request = [0u8; REQUEST_BYTES];
    request[4..6].copy_from_slice(&6u16.to_be_bytes());
    request[6] = 1; // unit id
    request[7] = 3; // read holding registers
    request[10..12].copy_from_slice(&registers.to_be_bytes());
    let mut answer = vec![0u8; 9 + 2 * usize::from(registers)];
    let mut rates = Vec::with_capacity(rounds);
    let mut transaction: u16 = 0;
    let mut start_register: u16 = 0;
    for _ in 0..rounds {
        let began = Instant::now();
        let until = began + Duration::from_secs_f64(seconds);
        let mut done: u64 = 0;
        while Instant::now() < until {
            // 64 requests between clock reads: the clock is not what is measured.
            for _ in 0..64 {
                transaction = transaction.wrapping_add(1);
                request[0..2].copy_from_slice(&transaction.to_be_bytes());
                request[8..10].copy_from_slice(&start_register.to_be_bytes());
                start_register = if start_register > 65_535 - 2 * registers {
                    0
                } else {
                    start_register + registers
                };
                stream.write_all(&request)?;
                stream.read_exact(&mut answer)?;
            }
            done += 64;
        }
        rates.push(done as f64 / began.elapsed().as_secs_f64());
    }
    let shown: Vec<String> = rates.iter().map(|r| format!("{r:.1}")).collect();
    println!("[{}]", shown.join(","));
    Ok(())
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> f64 { args.get(i).and_then(|a| a.parse().ok()).unwrap_or(0.0) };
    match args.get(1).map(String::as_str) {
        Some("serve") => serve(number(2) as usize),
        Some("ping") => ping(
            number(2) as u16,
            number(3) as u16,
            number(4),
            number(5) as usize,
        ),
        _ => {
            eprintln!("usage: loopback_floor serve <answer_bytes> | ping <port> <registers> <seconds> <rounds>");
            std::process::exit(2);
        }
    }
}
