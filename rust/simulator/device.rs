//! One simulated device: its register image, refreshed once per tick, its
//! outputs, and its faults.
//!
//! Outputs behave as on a PowerTag C IO or an Acti9 IO module: each has a
//! command register (1 off, 2 on, 3 toggle) and a status register that reads
//! the state of the *load* it drives. In contactor mode the output is latched:
//! it stays as commanded and the contactor follows it. In impulse mode it
//! drives a bistable impulse relay: a command that changes the relay's state
//! sends one pulse of [`IMPULSE_MS`] (the relay flips and stays), a command
//! that would not change it sends none, and a command while a pulse is still
//! on is answered "busy" (exception 0x06).
//!
//! The image is rendered lazily: the first request after a tick boundary
//! renders the state at that boundary, later requests in the same tick copy the
//! buffer. What a device serves at wall-clock time `t` is therefore exactly the
//! state at `⌊t / tick⌋ · tick`, which [`Device::truth`] recomputes for tests.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use crate::decode::DataType;

use super::encode::{encode_datetime, encode_number, encode_text, encode_unavailable, Value};
use super::model::{CompiledModel, Phase, Quantity, IMPULSE_MS};
use super::physics::{unit, Load, State};

/// Misbehaviours a device can be told to show, for testing a gateway.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Accept requests and never answer them.
    pub dead: bool,
    /// Powered off: a port whose devices are all offline is closed (connections
    /// refused, open ones dropped); behind a shared port or on a bus, silence.
    pub offline: bool,
    /// Extra time before every answer.
    pub latency_ms: u32,
    /// Share of requests answered with exception 0x06 (server device busy), 0..=1.
    pub busy_fraction: f64,
    /// (function code, first address, count): reads touching these get exception 0x02.
    pub illegal: Vec<(u8, u16, u16)>,
    /// Points (indices in the model) served as "not available": their sentinel.
    pub unavailable: Vec<u32>,
}

/// A device to simulate.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    /// Index of its model in the simulator's model list.
    pub model: usize,
    /// Index of the listener (TCP port) it answers on.
    pub listener: usize,
    pub unit_id: u8,
    /// Draws its load; the same seed serves the same values.
    pub seed: u64,
    pub faults: Faults,
}

#[derive(Debug, Clone, Copy, Default)]
struct OutputState {
    /// The output contact itself (an impulse output: on during its pulse only).
    on: bool,
    /// Impulse outputs: when the pulse ends.
    off_at: Option<i64>,
    /// The load it drives, as the status register reads it: the contactor
    /// (follows the output) or the impulse relay (latched between pulses).
    load: bool,
}

#[derive(Debug)]
struct Image {
    /// Tick rendered in `buffer`; `i64::MIN` forces a render.
    tick: i64,
    buffer: Vec<u16>,
    outputs: Vec<OutputState>,
}

/// What a command write did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Done,
    NotAnOutput,
    BadValue,
    /// An impulse output is still sending its pulse.
    Busy,
}

#[derive(Debug)]
pub(crate) struct Device {
    pub(crate) model: Arc<CompiledModel>,
    pub(crate) spec: DeviceSpec,
    load: Load,
    faults: RwLock<Faults>,
    image: Mutex<Image>,
    requests: AtomicU64,
    /// Write requests (functions 5, 6, 15, 16...) that reached this device.
    writes: AtomicU64,
    /// Reads this device was sent, by (function, address, count): what a test
    /// counts to see how often a gateway asks for what.
    reads: Mutex<HashMap<ReadShape, u64>>,
}

/// A read as a device is sent it: (function, address, count).
pub type ReadShape = (u8, u16, u16);

/// Distinct reads a device keeps count of; a gateway makes a few dozen,
/// a client sweeping the address space more, counted no further.
const MAX_READ_SHAPES: usize = 4096;

impl Device {
    pub(crate) fn new(model: Arc<CompiledModel>, spec: DeviceSpec) -> Device {
        let image = Image {
            tick: i64::MIN,
            buffer: vec![0; model.buffer_len],
            outputs: vec![OutputState::default(); model.spec.outputs.len()],
        };
        Device {
            load: Load::new(spec.seed),
            faults: RwLock::new(spec.faults.clone()),
            image: Mutex::new(image),
            requests: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            reads: Mutex::new(HashMap::new()),
            model,
            spec,
        }
    }

    pub(crate) fn faults(&self) -> Faults {
        self.faults
            .read()
            .map_or_else(|e| e.into_inner().clone(), |f| f.clone())
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        match self.faults.write() {
            Ok(mut f) => *f = faults,
            Err(e) => *e.into_inner() = faults,
        }
        self.lock().tick = i64::MIN; // unavailable points change at once
    }

    fn lock(&self) -> MutexGuard<'_, Image> {
        // A panic elsewhere must not take the device down with it: the image is
        // re-rendered from scratch on the next tick anyway.
        self.image.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count a read sent to this device, answered or not.
    pub(crate) fn count_read(&self, fc: u8, address: u16, count: u16) {
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        let shapes = reads.len();
        if let Some(n) = reads.get_mut(&(fc, address, count)) {
            *n += 1;
        } else if shapes < MAX_READ_SHAPES {
            reads.insert((fc, address, count), 1);
        }
    }

    /// The reads counted so far, in (function, address, count) order.
    pub(crate) fn reads(&self) -> Vec<(ReadShape, u64)> {
        let reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<_> = reads.iter().map(|(&k, &n)| (k, n)).collect();
        out.sort_unstable();
        out
    }

    /// Whether this request should be answered "busy": a deterministic draw per request.
    pub(crate) fn draw_busy(&self, fraction: f64) -> bool {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        fraction > 0.0 && unit(&[self.spec.seed, 0xB0B5, n]) < fraction
    }

    /// Registers (or bits, one per entry) `[address, address + count)` of `fc` at `now_ms`.
    pub(crate) fn read(
        &self,
        fc: u8,
        address: u16,
        count: u16,
        now_ms: i64,
        tick_ms: i64,
        out: &mut Vec<u16>,
    ) {
        let mut image = self.lock();
        self.refresh(&mut image, now_ms, tick_ms);
        self.model.read(&image.buffer, fc, address, count, out);
    }

    /// Count a write request addressed to this device (whatever became of it).
    pub(crate) fn count_write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }

    /// Write requests that reached this device so far.
    pub(crate) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Write a command register: 1 off, 2 on, 3 toggle.
    pub(crate) fn command(&self, address: u16, value: u16, now_ms: i64) -> Command {
        let Some(k) = self.model.output_at(address) else {
            return Command::NotAnOutput;
        };
        let mut image = self.lock();
        expire_impulses(&mut image.outputs, now_ms);
        let state = &mut image.outputs[k];
        let load = match value {
            1 => false,
            2 => true,
            3 => !state.load,
            _ => return Command::BadValue,
        };
        if self.model.spec.outputs[k].impulse {
            if state.off_at.is_some() {
                return Command::Busy;
            }
            if load != state.load {
                // One pulse flips the relay; it stays when the pulse ends.
                *state = OutputState {
                    on: true,
                    off_at: Some(now_ms + IMPULSE_MS),
                    load,
                };
            }
        } else {
            *state = OutputState {
                on: load,
                off_at: None,
                load,
            };
        }
        image.tick = i64::MIN; // the status registers follow at once
        Command::Done
    }

    /// Each output's load state (what its status register reads).
    pub(crate) fn outputs(&self, now_ms: i64) -> Vec<bool> {
        let mut image = self.lock();
        expire_impulses(&mut image.outputs, now_ms);
        image.outputs.iter().map(|o| o.load).collect()
    }

    fn refresh(&self, image: &mut Image, now_ms: i64, tick_ms: i64) {
        if expire_impulses(&mut image.outputs, now_ms) {
            image.tick = i64::MIN;
        }
        let tick = now_ms.div_euclid(tick_ms);
        if image.tick == tick {
            return;
        }
        let state = self.load.state(tick * tick_ms, tick);
        let unavailable = self.faults().unavailable;
        let Image {
            buffer, outputs, ..
        } = image;
        buffer.fill(0);
        for (k, point) in self.model.spec.points.iter().enumerate() {
            let at = self.model.offsets[k];
            let width = usize::from(point.field.registers().max(1));
            if at + width <= buffer.len() {
                let out = &mut buffer[at..at + width];
                if !(unavailable.contains(&(k as u32)) && encode_unavailable(&point.field, out)) {
                    self.render(k, &state, outputs, out);
                }
            }
        }
        for (k, &at) in self.model.output_offsets.iter().enumerate() {
            if let Some(reg) = buffer.get_mut(at) {
                *reg = u16::from(outputs[k].load);
            }
        }
        image.tick = tick;
    }

    /// Encode point `k` into `out` and return the value the gateway should decode.
    fn render(&self, k: usize, state: &State, outputs: &[OutputState], out: &mut [u16]) -> Value {
        let point = &self.model.spec.points[k];
        let field = &point.field;
        match (&point.quantity, field.data_type) {
            (Quantity::Text(text), DataType::Ascii) => encode_text(field, text, out),
            (_, DataType::Ascii) => encode_text(field, "", out),
            (_, DataType::Datetime) => encode_datetime(state.t_ms, out),
            (Quantity::Text(_) | Quantity::None, _) => encode_number(field, 0.0, out),
            (q, _) => {
                let si = self.physical(q, state, outputs);
                encode_number(field, si * point.unit_factor, out)
            }
        }
    }

    fn physical(&self, q: &Quantity, s: &State, outputs: &[OutputState]) -> f64 {
        let per_phase = |values: &[f64; 3], phase: Phase, total: bool| match phase {
            Phase::One(p) => values[p],
            Phase::All if total => values.iter().sum(),
            Phase::All => values.iter().sum::<f64>() / 3.0,
        };
        match *q {
            Quantity::VoltageLn(p) => per_phase(&s.voltage_ln, p, false),
            Quantity::VoltageLl(p) => per_phase(&s.voltage_ll, p, false),
            Quantity::Current(p) => per_phase(&s.current, p, false),
            Quantity::CurrentN => s.current_n,
            Quantity::ActivePower(p) => per_phase(&s.active, p, true),
            Quantity::ReactivePower(p) => per_phase(&s.reactive, p, true),
            Quantity::ApparentPower(p) => per_phase(&s.apparent, p, true),
            Quantity::PowerFactor(Phase::One(p)) => s.power_factor[p],
            Quantity::PowerFactor(Phase::All) => {
                s.active.iter().sum::<f64>() / s.apparent.iter().sum::<f64>()
            }
            Quantity::Frequency => s.frequency,
            Quantity::ActiveEnergyDelivered => s.active_energy,
            Quantity::ActiveEnergyReceived => s.received_energy,
            Quantity::ReactiveEnergyDelivered => s.reactive_energy,
            Quantity::ApparentEnergyDelivered => s.apparent_energy,
            // A clock read as a number: seconds since the epoch.
            Quantity::Clock => (s.t_ms / 1000) as f64,
            Quantity::Constant(c) => c,
            Quantity::Input(k) => f64::from(u8::from(self.load.input(k, s.t_ms))),
            Quantity::Output(k) => outputs
                .get(usize::from(k - 1))
                .map_or(0.0, |o| f64::from(u8::from(o.on))),
            Quantity::Pulses(k) => self.load.pulses(k, s.t_ms),
            Quantity::Text(_) | Quantity::None => 0.0,
        }
    }

    /// The value point `k` shows at `t_ms` (outputs: their state now).
    pub(crate) fn truth(&self, k: usize, t_ms: i64, tick_ms: i64) -> Value {
        let tick = t_ms.div_euclid(tick_ms);
        let state = self.load.state(tick * tick_ms, tick);
        let outputs = {
            let mut image = self.lock();
            expire_impulses(&mut image.outputs, t_ms);
            image.outputs.clone()
        };
        let field = &self.model.spec.points[k].field;
        let mut scratch = vec![0u16; usize::from(field.registers().max(1))];
        if self.faults().unavailable.contains(&(k as u32))
            && encode_unavailable(field, &mut scratch)
        {
            return Value::Unavailable;
        }
        self.render(k, &state, &outputs, &mut scratch)
    }
}

/// End the pulses that are over (the relays keep their state); true if any changed.
fn expire_impulses(outputs: &mut [OutputState], now_ms: i64) -> bool {
    let mut changed = false;
    for o in outputs.iter_mut() {
        if o.off_at.is_some_and(|t| now_ms >= t) {
            o.on = false;
            o.off_at = None;
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::FieldSpec;
    use crate::simulator::model::{ModelSpec, OutputSpec, PointSpec};

    const NOW: i64 = 1_795_491_552_345;
    const TICK: i64 = 100;

    fn io_device() -> Device {
        let mut bit1 = FieldSpec::new(10, DataType::Bitmap);
        bit1.bit = 1;
        let spec = ModelSpec {
            name: "io".into(),
            points: vec![
                PointSpec {
                    id: "Q1".into(),
                    function: 3,
                    field: FieldSpec::new(10, DataType::Bitmap),
                    quantity: Quantity::Output(1),
                    unit_factor: 1.0,
                },
                PointSpec {
                    id: "Q2".into(),
                    function: 3,
                    field: bit1,
                    quantity: Quantity::Output(2),
                    unit_factor: 1.0,
                },
            ],
            outputs: vec![
                OutputSpec {
                    id: "Q1".into(),
                    command_address: 50,
                    status_address: 20,
                    impulse: false,
                },
                OutputSpec {
                    id: "Q2".into(),
                    command_address: 51,
                    status_address: 21,
                    impulse: true,
                },
            ],
            max_registers_per_read: 125,
        };
        let model = Arc::new(CompiledModel::compile(spec).expect("compiles"));
        Device::new(
            model,
            DeviceSpec {
                model: 0,
                listener: 0,
                unit_id: 1,
                seed: 1,
                faults: Faults::default(),
            },
        )
    }

    fn read(d: &Device, address: u16, count: u16, t: i64) -> Vec<u16> {
        let mut out = Vec::new();
        d.read(3, address, count, t, TICK, &mut out);
        out
    }

    #[test]
    fn outputs_follow_commands_within_the_same_tick() {
        let d = io_device();
        assert_eq!(read(&d, 10, 1, NOW), [0]);
        assert_eq!(d.command(50, 2, NOW), Command::Done);
        assert_eq!(read(&d, 10, 1, NOW), [0b01]);
        assert_eq!(read(&d, 20, 2, NOW), [1, 0]);
        assert_eq!(d.command(50, 3, NOW), Command::Done);
        assert_eq!(read(&d, 20, 2, NOW), [0, 0]);
        assert_eq!(d.command(50, 7, NOW), Command::BadValue);
        assert_eq!(d.command(60, 2, NOW), Command::NotAnOutput);
    }

    #[test]
    fn impulse_outputs_pulse_and_their_relay_stays() {
        let d = io_device();
        assert_eq!(d.command(51, 2, NOW), Command::Done);
        // The output pulses (bit 1 of register 10), the relay is on (status register 21).
        assert_eq!(read(&d, 10, 1, NOW + 10), [0b10]);
        assert_eq!(read(&d, 20, 2, NOW + 10), [0, 1]);
        // A command during the pulse: busy, nothing changes.
        assert_eq!(d.command(51, 3, NOW + 10), Command::Busy);
        assert_eq!(d.outputs(NOW + IMPULSE_MS - 1), [false, true]);
        // The pulse ends, the relay stays on.
        assert_eq!(read(&d, 10, 1, NOW + IMPULSE_MS), [0]);
        assert_eq!(read(&d, 20, 2, NOW + IMPULSE_MS), [0, 1]);
        assert_eq!(d.outputs(NOW + IMPULSE_MS), [false, true]);
        // "On" again changes nothing: no pulse.
        let later = NOW + IMPULSE_MS;
        assert_eq!(d.command(51, 2, later), Command::Done);
        assert_eq!(read(&d, 10, 1, later), [0]);
        // Toggle: one pulse, the relay goes off.
        assert_eq!(d.command(51, 3, later), Command::Done);
        assert_eq!(read(&d, 10, 1, later), [0b10]);
        assert_eq!(read(&d, 20, 2, later), [0, 0]);
        assert_eq!(d.outputs(later + IMPULSE_MS), [false, false]);
    }

    #[test]
    fn writes_are_counted() {
        let d = io_device();
        assert_eq!(d.writes(), 0);
        d.count_write();
        d.count_write();
        assert_eq!(d.writes(), 2);
    }

    #[test]
    fn busy_draws_are_reproducible_and_near_the_fraction() {
        let (a, b) = (io_device(), io_device());
        let draws_a: Vec<bool> = (0..1000).map(|_| a.draw_busy(0.25)).collect();
        let draws_b: Vec<bool> = (0..1000).map(|_| b.draw_busy(0.25)).collect();
        assert_eq!(draws_a, draws_b);
        let busy = draws_a.iter().filter(|&&x| x).count();
        assert!((200..300).contains(&busy), "{busy}");
        assert!(!(0..100).any(|_| a.draw_busy(0.0)));
    }
}
