//! A Modbus device simulator: realistic, consistent, time-varying register
//! maps for any device model, so that one machine runs a whole installation.
//!
//! - [`physics`]: the installation's electrical state as a pure function of
//!   (seed, time): V ≈ 230 V, currents per load profile, P = V·I·PF per phase,
//!   totals as sums, f ≈ 50 Hz, energies integrated in closed form.
//! - [`model`]: a device model compiled into register segments.
//! - [`encode`]: values → registers, for every type and byte order.
//! - `device`: a device's register image, refreshed once per tick, its
//!   outputs and faults; `server`: the Modbus front (tokio-modbus): TCP, RTU
//!   frames over TCP, RTU on a serial line; devices alone on a port or as unit
//!   ids behind one.
//!
//! The image is refreshed lazily (the first request after a tick boundary
//! renders it) rather than by a timer: thousands of idle devices cost nothing,
//! and what is served never depends on when a timer happened to fire.
//!
//! Determinism: what a device serves at wall-clock time `t` is the state at
//! the start of `t`'s tick (`⌊t / tick_ms⌋ · tick_ms`), and
//! [`Simulator::truth`] computes that same value without the network.
//!
//! The simulator runs on a tokio runtime of its own, started by
//! [`Simulator::start`] and dropped by [`Simulator::stop`].

pub mod encode;
pub mod model;
pub mod physics;

mod device;
mod server;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::runtime::Runtime;

pub use device::{DeviceSpec, Faults, ReadShape};
pub use encode::Value;
pub use model::{CompiledModel, ModelSpec, OutputSpec, PointSpec, Quantity};

use crate::{Error, Result};
use device::Device;

/// Where and how a group of devices is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerSpec {
    /// Modbus TCP on `host:port`; port 0 takes a free one.
    Tcp { host: String, port: u16 },
    /// RTU frames (with CRC) over TCP, as serial-to-Ethernet converters carry them.
    RtuOverTcp { host: String, port: u16 },
    /// Modbus RTU on a serial line (or one end of a pseudo-terminal pair).
    Serial { path: String, baud_rate: u32 },
}

/// Where a listener ended up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    Tcp(SocketAddr),
    Serial(String),
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) devices: Vec<Device>,
    pub(crate) tick_ms: i64,
    /// Wakes the listeners when faults change (a port opens or closes with them).
    pub(crate) faults_changed: tokio::sync::Notify,
}

/// Many simulated devices behind one or more Modbus TCP listeners.
pub struct Simulator {
    shared: Arc<Shared>,
    listeners: Vec<ListenerSpec>,
    runtime: Option<Runtime>,
    bound: Vec<Bound>,
}

/// Milliseconds since the Unix epoch, wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Simulator {
    /// Check every model and device; nothing listens before [`Self::start`].
    pub fn new(
        models: Vec<ModelSpec>,
        listeners: Vec<ListenerSpec>,
        devices: Vec<DeviceSpec>,
        tick_ms: u32,
    ) -> Result<Simulator> {
        if tick_ms == 0 {
            return Err(Error::Simulator("tick_ms must be at least 1".into()));
        }
        let models = models
            .into_iter()
            .map(|m| CompiledModel::compile(m).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let mut taken = vec![[false; 256]; listeners.len()];
        let mut built = Vec::with_capacity(devices.len());
        for (k, spec) in devices.into_iter().enumerate() {
            let model = models
                .get(spec.model)
                .ok_or_else(|| Error::Simulator(format!("device {k}: no model {}", spec.model)))?;
            let Some(units) = taken.get_mut(spec.listener) else {
                return Err(Error::Simulator(format!(
                    "device {k}: no listener {}",
                    spec.listener
                )));
            };
            if std::mem::replace(&mut units[usize::from(spec.unit_id)], true) {
                return Err(Error::Simulator(format!(
                    "device {k}: unit id {} is already used on listener {}",
                    spec.unit_id, spec.listener
                )));
            }
            check_faults(k, &spec.faults, model.spec.points.len())?;
            built.push(Device::new(Arc::clone(model), spec));
        }
        Ok(Simulator {
            shared: Arc::new(Shared {
                devices: built,
                tick_ms: i64::from(tick_ms),
                faults_changed: tokio::sync::Notify::new(),
            }),
            listeners,
            runtime: None,
            bound: Vec::new(),
        })
    }

    /// Bind every listener and serve; returns where each one listens.
    pub fn start(&mut self) -> Result<Vec<Bound>> {
        if self.runtime.is_some() {
            return Ok(self.bound.clone());
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("panelfast-sim")
            .enable_all()
            .build()
            .map_err(|e| Error::Simulator(format!("cannot start a runtime: {e}")))?;
        let units = self.unit_tables();
        let mut members = vec![Vec::new(); self.listeners.len()];
        for (k, d) in self.shared.devices.iter().enumerate() {
            members[d.spec.listener].push(k as u32);
        }
        let mut bound = Vec::with_capacity(self.listeners.len());
        for ((spec, units), members) in self.listeners.iter().zip(units).zip(members) {
            let service = server::Listener {
                members: members.into(),
                shared: Arc::clone(&self.shared),
                units: Arc::new(units),
                // On a serial bus nobody answers for an absent unit; a TCP
                // gateway answers exception 0x0B.
                silent_when_absent: matches!(spec, ListenerSpec::Serial { .. }),
            };
            let _entered = runtime.enter();
            bound.push(server::spawn(&runtime, spec, service)?);
        }
        self.runtime = Some(runtime);
        self.bound = bound.clone();
        Ok(bound)
    }

    /// Device index for each unit id, per listener.
    fn unit_tables(&self) -> Vec<[Option<u32>; 256]> {
        let mut units = vec![[None; 256]; self.listeners.len()];
        let mut alone = vec![None; self.listeners.len()];
        for (k, d) in self.shared.devices.iter().enumerate() {
            units[d.spec.listener][usize::from(d.spec.unit_id)] = Some(k as u32);
            alone[d.spec.listener] = match alone[d.spec.listener] {
                None => Some(Some(k as u32)),
                Some(_) => Some(None),
            };
        }
        // A device alone on a TCP port also answers unit ids 0 and 255, the ones
        // Modbus TCP uses to address "the device itself" (as real meters do).
        for ((units, alone), spec) in units.iter_mut().zip(alone).zip(&self.listeners) {
            if let (Some(Some(k)), ListenerSpec::Tcp { .. }) = (alone, spec) {
                for direct in [0, 255] {
                    units[direct] = units[direct].or(Some(k));
                }
            }
        }
        units
    }

    /// Stop listening and close every connection; returns once the port is free.
    pub fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Waits for the workers to drop every task, and with them the sockets:
            // a client connecting right after stop() must be refused.
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
        self.bound.clear();
    }

    pub fn is_running(&self) -> bool {
        self.runtime.is_some()
    }

    pub fn tick_ms(&self) -> i64 {
        self.shared.tick_ms
    }

    pub fn device_count(&self) -> usize {
        self.shared.devices.len()
    }

    fn device(&self, device: usize) -> Result<&Device> {
        self.shared
            .devices
            .get(device)
            .ok_or_else(|| Error::Simulator(format!("no device {device}")))
    }

    /// The value device `device` serves for its model's point `point` at `t_ms`.
    pub fn truth(&self, device: usize, point: usize, t_ms: i64) -> Result<Value> {
        let d = self.device(device)?;
        if point >= d.model.spec.points.len() {
            return Err(Error::Simulator(format!(
                "device {device}: no point {point}"
            )));
        }
        Ok(d.truth(point, t_ms, self.shared.tick_ms))
    }

    /// The registers (bits: 0/1) a read of `fc` would return at `t_ms`, without the network.
    pub fn registers(
        &self,
        device: usize,
        fc: u8,
        address: u16,
        count: u16,
        t_ms: i64,
    ) -> Result<Vec<u16>> {
        let d = self.device(device)?;
        if !(1..=4).contains(&fc) || u32::from(address) + u32::from(count) > 0x1_0000 {
            return Err(Error::Simulator(format!(
                "no registers {address}+{count} for function {fc}"
            )));
        }
        let mut out = Vec::new();
        d.read(fc, address, count, t_ms, self.shared.tick_ms, &mut out);
        Ok(out)
    }

    pub fn faults(&self, device: usize) -> Result<Faults> {
        Ok(self.device(device)?.faults())
    }

    pub fn set_faults(&self, device: usize, faults: Faults) -> Result<()> {
        let d = self.device(device)?;
        check_faults(device, &faults, d.model.spec.points.len())?;
        d.set_faults(faults);
        self.shared.faults_changed.notify_waiters();
        Ok(())
    }

    /// The reads device `device` was sent so far (answered or not), as
    /// `((function, address, count), times)` in function then address order.
    pub fn reads(&self, device: usize) -> Result<Vec<(ReadShape, u64)>> {
        Ok(self.device(device)?.reads())
    }

    /// Each output's load state (on = true, what its status register reads),
    /// in the model's output order.
    pub fn outputs(&self, device: usize) -> Result<Vec<bool>> {
        Ok(self.device(device)?.outputs(now_ms()))
    }

    /// How many write requests reached `device` (answered or refused).
    pub fn writes(&self, device: usize) -> Result<u64> {
        Ok(self.device(device)?.writes())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

fn check_faults(device: usize, faults: &Faults, points: usize) -> Result<()> {
    if let Some(&k) = faults.unavailable.iter().find(|&&k| k as usize >= points) {
        return Err(Error::Simulator(format!(
            "device {device}: no point {k} to make unavailable"
        )));
    }
    if !(0.0..=1.0).contains(&faults.busy_fraction) {
        return Err(Error::Simulator(format!(
            "device {device}: busy_fraction must be within 0..=1, not {}",
            faults.busy_fraction
        )));
    }
    if let Some(&(fc, _, _)) = faults.illegal.iter().find(|r| !(1..=4).contains(&r.0)) {
        return Err(Error::Simulator(format!(
            "device {device}: illegal range for function {fc}: not 1..=4"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{DataType, FieldSpec};
    use tokio_modbus::client::{tcp, Reader};
    use tokio_modbus::prelude::SlaveContext;
    use tokio_modbus::Slave;

    /// A model of `n` FLOAT32 points cycling through the electrical quantities.
    fn float_model(n: u16) -> ModelSpec {
        let quantities = [
            "voltage_ln.1",
            "current.2",
            "active_power.total",
            "frequency",
        ];
        ModelSpec {
            name: "floats".into(),
            points: (0..n)
                .map(|k| PointSpec {
                    id: format!("p{k}"),
                    function: 3,
                    field: FieldSpec::new(2 * k, DataType::Float32),
                    quantity: Quantity::parse(quantities[usize::from(k) % 4]).expect("known"),
                    unit_factor: 1.0,
                })
                .collect(),
            outputs: vec![],
            max_registers_per_read: 125,
        }
    }

    fn simulator(devices: usize, points: u16, per_port: usize) -> Simulator {
        let ports = devices.div_ceil(per_port);
        let listeners = (0..ports)
            .map(|_| ListenerSpec::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            })
            .collect();
        let devices = (0..devices)
            .map(|k| DeviceSpec {
                model: 0,
                listener: k / per_port,
                unit_id: (k % per_port + 1) as u8,
                seed: k as u64,
                faults: Faults::default(),
            })
            .collect();
        Simulator::new(vec![float_model(points)], listeners, devices, 100).expect("valid")
    }

    #[test]
    fn served_registers_are_the_image_and_the_truth() {
        let mut sim = simulator(3, 200, 3);
        let Bound::Tcp(addr) = sim.start().expect("listens")[0].clone() else {
            panic!("a TCP listener");
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut ctx = tcp::connect_slave(addr, Slave(2)).await.expect("connects");
            for _ in 0..5 {
                let t0 = now_ms();
                let regs = ctx
                    .read_holding_registers(0, 125)
                    .await
                    .expect("transport")
                    .expect("no exception");
                let t1 = now_ms();
                if t0 / 100 != t1 / 100 {
                    continue; // straddled a tick: try again
                }
                assert_eq!(regs, sim.registers(1, 3, 0, 125, t0).expect("image"));
                let bits = (u32::from(regs[0]) << 16) | u32::from(regs[1]);
                let value = f64::from(f32::from_bits(bits));
                assert_eq!(sim.truth(1, 0, t0).expect("truth"), Value::Float(value));
                assert!((220.0..240.0).contains(&value));
                ctx.set_slave(Slave(9));
                let nobody = ctx.read_holding_registers(0, 2).await.expect("transport");
                assert_eq!(
                    nobody,
                    Err(tokio_modbus::ExceptionCode::GatewayTargetDevice)
                );
                return;
            }
            panic!("every read straddled a tick");
        });
        sim.stop();
    }

    /// CPU seconds used so far by the simulator's own threads (Linux).
    fn simulator_cpu_s() -> f64 {
        let mut ticks = 0u64;
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.flatten() {
                let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                if !comm.starts_with("panelfast-sim") {
                    continue;
                }
                let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
                // Fields after the command name: utime and stime are the 12th and 13th.
                let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                let fields: Vec<&str> = after.split_whitespace().collect();
                for f in fields.iter().skip(11).take(2) {
                    ticks += f.parse::<u64>().unwrap_or(0);
                }
            }
        }
        ticks as f64 / 100.0 // USER_HZ
    }

    /// 100 devices × 1,000 FLOAT32 points, read as a gateway would (16 reads of
    /// 125 registers per device): the simulator's CPU at 100,000 points/s, and
    /// the most it serves flat out.
    /// `cargo test --release --lib simulator_throughput -- --ignored --nocapture`
    #[test]
    #[ignore = "a measurement, not a check: run it by hand in release"]
    fn simulator_throughput() {
        let mut sim = simulator(100, 1000, 1);
        let addrs: Vec<SocketAddr> = sim
            .start()
            .expect("listens")
            .into_iter()
            .filter_map(|b| match b {
                Bound::Tcp(a) => Some(a),
                Bound::Serial(_) => None,
            })
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let seconds = 3.0;
        for paced in [true, false] {
            let cpu0 = simulator_cpu_s();
            let addrs = addrs.clone();
            let points = rt.block_on(async move {
                let start = std::time::Instant::now();
                let mut tasks = Vec::new();
                for addr in addrs {
                    tasks.push(tokio::spawn(async move {
                        let mut ctx = tcp::connect(addr).await.expect("connects");
                        let mut registers = 0u64;
                        let mut period = tokio::time::interval(std::time::Duration::from_secs(1));
                        while start.elapsed().as_secs_f64() < seconds {
                            if paced {
                                period.tick().await;
                            }
                            for block in 0..16u16 {
                                let regs = ctx
                                    .read_holding_registers(block * 125, 125)
                                    .await
                                    .expect("transport")
                                    .expect("no exception");
                                registers += regs.len() as u64;
                            }
                        }
                        registers / 2
                    }));
                }
                let mut total = 0;
                for t in tasks {
                    total += t.await.expect("task");
                }
                total
            });
            let cpu = simulator_cpu_s() - cpu0;
            println!(
                "{}: {:.0} FLOAT32 points/s served, simulator CPU {:.1} % of one core",
                if paced { "paced at 1 Hz" } else { "flat out" },
                points as f64 / seconds,
                100.0 * cpu / seconds
            );
        }
        sim.stop();
    }
}
