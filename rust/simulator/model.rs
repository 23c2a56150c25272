//! A device model compiled for serving: where each point sits in the register
//! image, and which physical quantity it shows.
//!
//! The image of a model is a few contiguous *segments* per function code,
//! covering its points; every device of the model owns one flat buffer of
//! all segments, so thousands of devices cost only their points' registers.

use crate::decode::{DataType, FieldSpec};
use crate::{Error, Result};

/// What a point shows; parsed from a measurement's `quantity` (see the models README).
#[derive(Debug, Clone, PartialEq)]
pub enum Quantity {
    /// Served as zeros: a register the model lists but the simulator has nothing for.
    None,
    VoltageLn(Phase),
    VoltageLl(Phase),
    Current(Phase),
    CurrentN,
    ActivePower(Phase),
    ReactivePower(Phase),
    ApparentPower(Phase),
    PowerFactor(Phase),
    Frequency,
    ActiveEnergyDelivered,
    ActiveEnergyReceived,
    ReactiveEnergyDelivered,
    ApparentEnergyDelivered,
    /// The device's clock (DATETIME).
    Clock,
    Text(String),
    Constant(f64),
    /// Digital input k (1-based).
    Input(u16),
    /// State of output k (1-based, in the model's output order): 0 off, 1 on.
    Output(u16),
    /// Impulse counter k (1-based).
    Pulses(u16),
}

/// One phase, or the three together (`avg` for voltages and currents, `total` for powers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    One(usize),
    All,
}

impl Quantity {
    /// Parse `voltage_ln.1`, `active_power.total`, `text:PM5560`, `input.2`...
    pub fn parse(text: &str) -> Result<Quantity> {
        let bad = || Error::Simulator(format!("unknown quantity {text:?}"));
        if text.is_empty() {
            return Ok(Quantity::None);
        }
        if let Some(t) = text.strip_prefix("text:") {
            return Ok(Quantity::Text(t.to_string()));
        }
        if let Some(c) = text.strip_prefix("constant:") {
            return c.parse().map(Quantity::Constant).map_err(|_| bad());
        }
        let (name, which) = text.split_once('.').unwrap_or((text, ""));
        let ll = matches!(which, "12" | "23" | "31");
        // Line-to-line voltages are named by their pair of phases, the rest by phase.
        let phase = |all: &str, pairs: bool| -> Result<Phase> {
            match which {
                "1" | "12" if pairs == ll => Ok(Phase::One(0)),
                "2" | "23" if pairs == ll => Ok(Phase::One(1)),
                "3" | "31" if pairs == ll => Ok(Phase::One(2)),
                w if w == all => Ok(Phase::All),
                _ => Err(bad()),
            }
        };
        let index = || -> Result<u16> {
            match which.parse::<u16>() {
                Ok(k) if (1..=16).contains(&k) => Ok(k),
                _ => Err(bad()),
            }
        };
        Ok(match name {
            "voltage_ln" => Quantity::VoltageLn(phase("avg", false)?),
            "voltage_ll" => Quantity::VoltageLl(phase("avg", true)?),
            "current" if which == "n" => Quantity::CurrentN,
            "current" => Quantity::Current(phase("avg", false)?),
            "active_power" => Quantity::ActivePower(phase("total", false)?),
            "reactive_power" => Quantity::ReactivePower(phase("total", false)?),
            "apparent_power" => Quantity::ApparentPower(phase("total", false)?),
            "power_factor" => Quantity::PowerFactor(phase("total", false)?),
            "frequency" if which.is_empty() => Quantity::Frequency,
            "active_energy" if which == "delivered" => Quantity::ActiveEnergyDelivered,
            "active_energy" if which == "received" => Quantity::ActiveEnergyReceived,
            "reactive_energy" if which == "delivered" => Quantity::ReactiveEnergyDelivered,
            "apparent_energy" if which == "delivered" => Quantity::ApparentEnergyDelivered,
            "clock" if which.is_empty() => Quantity::Clock,
            "input" => Quantity::Input(index()?),
            "output" => Quantity::Output(index()?),
            "pulse_count" => Quantity::Pulses(index()?),
            _ => return Err(bad()),
        })
    }
}

/// A measurement of a model as the simulator serves it.
#[derive(Debug, Clone)]
pub struct PointSpec {
    /// Its id in the model, for error messages and look-ups.
    pub id: String,
    /// Function code that reads it: 1 coils, 2 discrete inputs, 3 holding, 4 input registers.
    pub function: u8,
    pub field: FieldSpec,
    pub quantity: Quantity,
    /// Multiplies the SI value into the measurement's unit (1e-3 for kW...).
    pub unit_factor: f64,
}

/// An output of an IO module: written with 1 off, 2 on, 3 toggle.
#[derive(Debug, Clone)]
pub struct OutputSpec {
    pub id: String,
    pub command_address: u16,
    pub status_address: u16,
    /// Impulse mode: the output drives an impulse relay with pulses of
    /// [`IMPULSE_MS`]; otherwise (contactor mode) it is latched.
    pub impulse: bool,
}

/// How long an impulse output's pulse lasts.
pub const IMPULSE_MS: i64 = 500;

/// A device model, as handed to the simulator.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub name: String,
    pub points: Vec<PointSpec>,
    pub outputs: Vec<OutputSpec>,
    /// Reads of more registers than this get exception 0x03, as real devices answer.
    pub max_registers_per_read: u16,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub start: u16,
    /// Up to 65536: a segment may cover the whole address space.
    pub len: u32,
    /// Where the segment starts in the device's buffer.
    pub at: usize,
}

/// A compiled model: segments per function code and each point's place.
#[derive(Debug)]
pub struct CompiledModel {
    pub spec: ModelSpec,
    /// Segments of function codes 1..=4 (index fc − 1), sorted by start.
    pub(crate) segments: [Vec<Segment>; 4],
    /// Offset of each point in the device buffer.
    pub(crate) offsets: Vec<usize>,
    /// Offset of each output's status register (function 3).
    pub(crate) output_offsets: Vec<usize>,
    pub(crate) buffer_len: usize,
}

/// Points closer than this share a segment: fewer segments, a little more memory.
const SEGMENT_GAP: u32 = 32;

impl CompiledModel {
    pub fn compile(spec: ModelSpec) -> Result<CompiledModel> {
        let bad = |msg: String| Err(Error::Simulator(format!("model {}: {msg}", spec.name)));
        let mut ranges: [Vec<(u32, u32)>; 4] = Default::default();
        for p in &spec.points {
            if !(1..=4).contains(&p.function) {
                return bad(format!(
                    "{}: function code {} is not 1..=4",
                    p.id, p.function
                ));
            }
            if p.function <= 2 && p.field.data_type != DataType::Bitmap {
                return bad(format!(
                    "{}: functions 1 and 2 read bits: type must be BITMAP",
                    p.id
                ));
            }
            // Layout::compile checks the field the way the gateway's decoder will.
            crate::decode::Layout::compile(vec![p.field.clone()])
                .map_err(|e| Error::Simulator(format!("model {}: {}: {e}", spec.name, p.id)))?;
            let a = u32::from(p.field.address);
            ranges[usize::from(p.function - 1)]
                .push((a, a + u32::from(p.field.registers().max(1))));
        }
        for o in &spec.outputs {
            for a in [o.command_address, o.status_address] {
                ranges[2].push((u32::from(a), u32::from(a) + 1));
            }
        }
        let mut segments: [Vec<Segment>; 4] = Default::default();
        let mut at = 0usize;
        for (fc, list) in ranges.iter_mut().enumerate() {
            list.sort_unstable();
            let mut merged: Vec<(u32, u32)> = Vec::new();
            for &(s, e) in list.iter() {
                match merged.last_mut() {
                    Some(last) if s <= last.1 + SEGMENT_GAP => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            for (s, e) in merged {
                let len = (e - s).min(0x1_0000 - s);
                segments[fc].push(Segment {
                    start: s as u16,
                    len,
                    at,
                });
                at += len as usize;
            }
        }
        let locate = |fc: u8, address: u16| -> usize {
            segments[usize::from(fc - 1)]
                .iter()
                .find(|s| address >= s.start && u32::from(address) < u32::from(s.start) + s.len)
                .map_or(0, |s| s.at + usize::from(address - s.start))
        };
        let offsets = spec
            .points
            .iter()
            .map(|p| locate(p.function, p.field.address))
            .collect();
        let output_offsets = spec
            .outputs
            .iter()
            .map(|o| locate(3, o.status_address))
            .collect();
        Ok(CompiledModel {
            segments,
            offsets,
            output_offsets,
            buffer_len: at,
            spec,
        })
    }

    /// Copy registers `[address, address + count)` of function `fc` from a device
    /// buffer into `out`; addresses outside every segment read as 0.
    pub(crate) fn read(
        &self,
        buffer: &[u16],
        fc: u8,
        address: u16,
        count: u16,
        out: &mut Vec<u16>,
    ) {
        out.clear();
        out.resize(usize::from(count), 0);
        let (lo, hi) = (u32::from(address), u32::from(address) + u32::from(count));
        for s in &self.segments[usize::from(fc - 1)] {
            let (s_lo, s_hi) = (u32::from(s.start), u32::from(s.start) + s.len);
            let (from, to) = (lo.max(s_lo), hi.min(s_hi));
            if from < to {
                let src = s.at + (from - s_lo) as usize;
                let dst = (from - lo) as usize;
                let n = (to - from) as usize;
                out[dst..dst + n].copy_from_slice(&buffer[src..src + n]);
            }
        }
    }

    /// Index of the output commanded by writing `address`, if any.
    pub(crate) fn output_at(&self, address: u16) -> Option<usize> {
        self.spec
            .outputs
            .iter()
            .position(|o| o.command_address == address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_and_bad_ones_are_named() {
        assert_eq!(
            Quantity::parse("voltage_ln.2").ok(),
            Some(Quantity::VoltageLn(Phase::One(1)))
        );
        assert_eq!(
            Quantity::parse("voltage_ll.31").ok(),
            Some(Quantity::VoltageLl(Phase::One(2)))
        );
        assert_eq!(
            Quantity::parse("active_power.total").ok(),
            Some(Quantity::ActivePower(Phase::All))
        );
        assert_eq!(Quantity::parse("current.n").ok(), Some(Quantity::CurrentN));
        assert_eq!(
            Quantity::parse("text:PM5560").ok(),
            Some(Quantity::Text("PM5560".into()))
        );
        assert_eq!(Quantity::parse("output.2").ok(), Some(Quantity::Output(2)));
        for bad in [
            "voltage_ln.12",
            "voltage_ll.1",
            "active_power.avg",
            "current.23",
            "input.0",
            "frequency.1",
            "volts",
            "constant:x",
        ] {
            let err = Quantity::parse(bad).expect_err(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    fn point(id: &str, address: u16, t: DataType) -> PointSpec {
        PointSpec {
            id: id.into(),
            function: 3,
            field: FieldSpec::new(address, t),
            quantity: Quantity::None,
            unit_factor: 1.0,
        }
    }

    #[test]
    fn nearby_points_share_a_segment_and_reads_fill_gaps_with_zeros() {
        let spec = ModelSpec {
            name: "m".into(),
            points: vec![
                point("a", 100, DataType::Float32),
                point("b", 110, DataType::Int64),
                point("c", 5000, DataType::Uint16),
            ],
            outputs: vec![],
            max_registers_per_read: 125,
        };
        let m = CompiledModel::compile(spec).expect("compiles");
        assert_eq!(m.segments[2].len(), 2);
        assert_eq!(m.buffer_len, 14 + 1);
        let buffer: Vec<u16> = (1..=15).collect();
        let mut out = Vec::new();
        m.read(&buffer, 3, 98, 5, &mut out);
        assert_eq!(out, [0, 0, 1, 2, 3]);
        m.read(&buffer, 3, 4999, 3, &mut out);
        assert_eq!(out, [0, 15, 0]);
        m.read(&buffer, 4, 100, 2, &mut out);
        assert_eq!(out, [0, 0]);
    }
}
