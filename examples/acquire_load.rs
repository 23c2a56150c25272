//! The acquisition engine alone under the benchmark's load, without Python:
//! what the engine costs per request and per point, for profiling
//! (`valgrind --tool=callgrind`, `strace -c -f`) and for before/after
//! comparisons of engine changes.
//!
//! `acquire_load points <devices> <points> <seconds>`: `devices` devices of
//! `points` FLOAT32 points each (reads of 124 registers, as in
//! `benches/acquire.py`), polled every second, a snapshot each second at
//! +0.5 s as a sampler takes it; prints the process's CPU (share of a core and
//! ns per point), its peak RSS and the points delivered, one JSON line.
//!
//! `acquire_load requests <seconds>`: one device over the whole register
//! space (529 reads a cycle, back to back on one connection); prints each
//! cycle's requests per second and the process's CPU time per request
//! (decoding included), one JSON line.
//!
//! Both start `modbus_bench_server` (built beside this example:
//! `cargo build --release --examples`) in its own process, so only the
//! engine's side is measured.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use panelfast_core::decode::{DataType, FieldSpec};
use panelfast_core::modbus::{
    unix_ms, DeviceConfig, Engine, PlanLimits, PointConfig, ReadFunction, Transport,
};

const READ: u16 = 124;

struct Server {
    child: Child,
    ports: Vec<u16>,
}

impl Server {
    fn start(listeners: usize) -> Server {
        let exe = std::env::current_exe().expect("the example's own path");
        let server = exe.with_file_name("modbus_bench_server");
        let mut child = Command::new(&server)
            .arg(listeners.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (cargo build --release --examples)",
                    server.display()
                )
            });
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server's ports");
        let ports = line
            .trim()
            .trim_matches(['[', ']'])
            .split(',')
            .map(|p| p.parse().expect("a port"))
            .collect();
        Server { child, ports }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing its standard input ends it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

fn device(id: usize, port: u16, points: usize) -> DeviceConfig {
    DeviceConfig {
        id: format!("d{id}"),
        transport: Transport::Tcp {
            host: "127.0.0.1".into(),
            port,
        },
        unit_id: 1,
        period: Duration::from_secs(1),
        timeout: Duration::from_secs(2),
        retries: 2,
        limits: PlanLimits {
            max_registers_per_read: READ,
            max_gap: 0,
        },
        points: (0..points)
            .map(|k| {
                let address = u16::try_from(2 * k).expect("points fit the register space");
                PointConfig::new(
                    ReadFunction::HoldingRegisters,
                    FieldSpec::new(address, DataType::Float32),
                )
            })
            .collect(),
    }
}

/// The process's CPU time so far, all threads (ns-precise, from the
/// scheduler: clock ticks would be too coarse for a 1 % load), and the part
/// spent in the kernel (tick-sampled, so approximate).
fn cpu_seconds() -> (f64, f64) {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        let schedstat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total_ns += schedstat
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which may hold spaces): state is field 3.
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let system: f64 = fields[12].parse().expect("stime");
    (total_ns as f64 / 1e9, system / 100.0)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn wait_for(engine: &Engine, done: impl Fn(&Engine) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done(engine) {
        assert!(Instant::now() < deadline, "{:?}", engine.diagnostics());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sleep_to_next_second(after_ms: i64) {
    let now = unix_ms();
    let wait = 1000 - now.rem_euclid(1000) + after_ms;
    std::thread::sleep(Duration::from_millis(u64::try_from(wait).unwrap_or(0)));
}

fn points(devices: usize, points: usize, seconds: usize) {
    let server = Server::start(devices);
    let engine = Engine::new();
    for (i, &port) in server.ports.iter().enumerate() {
        engine
            .add_device(device(i, port, points))
            .expect("a valid device");
    }
    engine.start().expect("the engine starts");
    wait_for(&engine, |e| e.diagnostics().iter().all(|d| d.cycles >= 1));
    let mut seen = engine.snapshot().read_at_ms;
    let (began, cpu) = (Instant::now(), cpu_seconds());
    let mut delivered = 0usize;
    for _ in 0..seconds {
        sleep_to_next_second(500);
        let snapshot = engine.snapshot();
        delivered += snapshot
            .valid
            .iter()
            .zip(snapshot.read_at_ms.iter().zip(&seen))
            .filter(|(&valid, (now, before))| valid && now > before)
            .count();
        seen = snapshot.read_at_ms;
    }
    let wall = began.elapsed().as_secs_f64();
    let (total, system) = cpu_seconds();
    let (cpu, system) = ((total - cpu.0) / wall, (system - cpu.1) / wall);
    let rate = delivered as f64 / seconds as f64;
    let requests: u64 = engine.diagnostics().iter().map(|d| d.requests).sum();
    engine.stop();
    println!(
        "{{\"cpu_percent\": {:.3}, \"system_percent\": {:.3}, \"ns_per_point\": {:.1}, \"rss_mib\": {:.2}, \"points_per_s\": {rate:.0}, \"requests\": {requests}}}",
        100.0 * cpu,
        100.0 * system,
        1e9 * cpu / rate.max(1.0),
        peak_rss_mib(),
    );
    drop(server);
}

fn requests(seconds: usize) {
    let server = Server::start(1);
    let engine = Engine::new();
    engine
        .add_device(device(0, server.ports[0], 32_767))
        .expect("a valid device");
    engine.start().expect("the engine starts");
    wait_for(&engine, |e| e.diagnostics()[0].cycles >= 1);
    let mut rates = Vec::with_capacity(seconds);
    let (cpu, requests) = (cpu_seconds().0, engine.diagnostics()[0].requests);
    for _ in 0..seconds {
        sleep_to_next_second(900);
        let d = &engine.diagnostics()[0];
        if d.errors == 0 {
            rates.push(d.reads_per_cycle as f64 / d.last_cycle_duration.as_secs_f64());
        }
    }
    let requests = engine.diagnostics()[0].requests - requests;
    let cpu_per_request = (cpu_seconds().0 - cpu) / requests.max(1) as f64;
    engine.stop();
    let shown: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
    println!(
        "{{\"requests_per_s\": [{}], \"cpu_ns_per_request\": {:.0}}}",
        shown.join(", "),
        1e9 * cpu_per_request
    );
    drop(server);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, default: usize| -> usize {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    match args.get(1).map(String::as_str) {
        Some("points") => points(number(2, 100), number(3, 1000), number(4, 5)),
        Some("requests") => requests(number(2, 5)),
        _ => {
            eprintln!(
                "usage: acquire_load points <devices> <points> <seconds> | requests <seconds>"
            );
            std::process::exit(2);
        }
    }
    std::io::stdout().flush().expect("stdout");
}
