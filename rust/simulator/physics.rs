//! The electrical state of a simulated installation as a pure function of
//! (seed, time), so that a test can compute exactly what a device serves.
//!
//! Each device draws its load from its seed: a base current per phase, a power
//! factor, slow sinusoidal load variation and per-tick noise. Powers follow
//! from voltage, current and power factor phase by phase, totals are sums, and
//! energy counters are the *closed-form* integral of the smooth part of the
//! power since a fixed origin: monotonic, rising at the rate of power (within
//! the ±1 % voltage and power-factor ripple), and the same whoever asks.

use std::f64::consts::TAU;

/// 2024-01-01T00:00:00Z: where the energy integrals start.
pub const ENERGY_ORIGIN_MS: i64 = 1_704_067_200_000;
const NOMINAL_V: f64 = 230.0;
/// Relative amplitude of the slow load variation (below 1: power stays positive).
const LOAD_SWING: f64 = 0.2;

/// SplitMix64: a fast, well-mixed hash, for reproducible pseudo-random draws.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A uniform draw in [0, 1) from the hash of `parts`.
pub fn unit(parts: &[u64]) -> f64 {
    let h = parts.iter().fold(0x5EED_u64, |acc, &p| mix(acc ^ p));
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// A device's load, drawn once from its seed.
#[derive(Debug, Clone)]
pub struct Load {
    seed: u64,
    /// Base current per phase, A.
    current: [f64; 3],
    power_factor: [f64; 3],
    phase: [f64; 3],
    /// Period of the slow load variation, ms.
    period_ms: f64,
    energy_at_origin_wh: f64,
    received_wh: f64,
    /// Impulse counters: pulses per second and count at the origin.
    pulse_rate: [f64; 4],
}

impl Load {
    pub fn new(seed: u64) -> Load {
        let u = |k: u64| unit(&[seed, k]);
        Load {
            seed,
            current: [0, 1, 2].map(|p| 15.0 + 60.0 * u(10 + p)),
            power_factor: [0, 1, 2].map(|p| 0.86 + 0.11 * u(20 + p)),
            phase: [0, 1, 2].map(|p| TAU * u(30 + p)),
            period_ms: 300_000.0 + 600_000.0 * u(40),
            energy_at_origin_wh: (1e6 + 4e7 * u(41)).floor(),
            received_wh: (1e3 + 1e5 * u(42)).floor(),
            pulse_rate: [0, 1, 2, 3].map(|k| 0.2 + 1.8 * u(50 + k)),
        }
    }

    /// Per-tick noise in [-1, 1) for one signal.
    fn noise(&self, signal: u64, tick: i64) -> f64 {
        2.0 * unit(&[self.seed, signal, tick as u64]) - 1.0
    }

    /// Smooth load factor of phase `p` at `t` (ms), around 1.
    fn swing(&self, p: usize, t: f64) -> f64 {
        1.0 + LOAD_SWING * (TAU * t / self.period_ms + self.phase[p]).sin()
    }

    /// ∫ swing dt from the origin to `t`, in hours.
    fn swing_integral_h(&self, p: usize, t_ms: i64) -> f64 {
        let w = TAU / self.period_ms;
        let t = (t_ms - ENERGY_ORIGIN_MS) as f64;
        let phase = self.phase[p] + w * ENERGY_ORIGIN_MS as f64;
        let ms = t + LOAD_SWING / w * (phase.cos() - (w * t + phase).cos());
        ms / 3_600_000.0
    }

    /// The whole electrical state at `t_ms`; `tick` numbers the noise draw.
    pub fn state(&self, t_ms: i64, tick: i64) -> State {
        let t = t_ms as f64;
        let mut s = State {
            t_ms,
            ..State::default()
        };
        for p in 0..3 {
            let ripple = (TAU * t / 3_600_000.0 + self.phase[p]).sin();
            let v = NOMINAL_V * (1.0 + 0.01 * ripple) + 0.3 * self.noise(p as u64, tick);
            let i =
                self.current[p] * self.swing(p, t) * (1.0 + 0.005 * self.noise(3 + p as u64, tick));
            let pf = (self.power_factor[p] + 0.01 * ripple).min(0.999);
            s.voltage_ln[p] = v;
            s.current[p] = i;
            s.power_factor[p] = pf;
            s.apparent[p] = v * i;
            s.active[p] = v * i * pf;
            s.reactive[p] = v * i * (1.0 - pf * pf).sqrt();
        }
        for (k, (a, b)) in [(0, 1), (1, 2), (2, 0)].into_iter().enumerate() {
            let (va, vb) = (s.voltage_ln[a], s.voltage_ln[b]);
            // Phasors 120° apart: |Va − Vb| = √(Va² + Vb² + Va·Vb).
            s.voltage_ll[k] = (va * va + vb * vb + va * vb).sqrt();
        }
        // Neutral current: the phasor sum of the phase currents.
        let (mut re, mut im) = (0.0, 0.0);
        for p in 0..3 {
            let angle = -TAU / 3.0 * p as f64;
            re += s.current[p] * angle.cos();
            im += s.current[p] * angle.sin();
        }
        s.current_n = (re * re + im * im).sqrt();
        s.frequency = 50.0 + 0.02 * (TAU * t / 37_000.0).sin() + 0.003 * self.noise(9, tick);
        for p in 0..3 {
            let h = self.swing_integral_h(p, t_ms);
            let pf = self.power_factor[p];
            let va_h = NOMINAL_V * self.current[p] * h;
            s.active_energy += va_h * pf;
            s.reactive_energy += va_h * (1.0 - pf * pf).sqrt();
            s.apparent_energy += va_h;
        }
        s.active_energy += self.energy_at_origin_wh;
        s.reactive_energy += self.energy_at_origin_wh * 0.3;
        s.apparent_energy += self.energy_at_origin_wh * 1.1;
        s.received_energy = self.received_wh;
        s
    }

    /// Digital input `k` (1-based): flips now and then, each input at its own pace.
    pub fn input(&self, k: u16, t_ms: i64) -> bool {
        let period = 15_000 + 5_000 * i64::from(k);
        unit(&[
            self.seed,
            100 + u64::from(k),
            t_ms.div_euclid(period) as u64,
        ]) < 0.5
    }

    /// Impulse counter `k` (1-based): pulses since the origin, rising steadily.
    pub fn pulses(&self, k: u16, t_ms: i64) -> f64 {
        let rate = self.pulse_rate[usize::from(k.saturating_sub(1)) % 4];
        ((t_ms - ENERGY_ORIGIN_MS).max(0) as f64 / 1000.0 * rate).floor()
    }
}

/// Every physical quantity of a three-phase installation at one instant, SI units.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub t_ms: i64,
    pub voltage_ln: [f64; 3],
    /// 1-2, 2-3, 3-1.
    pub voltage_ll: [f64; 3],
    pub current: [f64; 3],
    pub current_n: f64,
    pub power_factor: [f64; 3],
    /// W, var, VA per phase.
    pub active: [f64; 3],
    pub reactive: [f64; 3],
    pub apparent: [f64; 3],
    pub frequency: f64,
    /// Wh, varh, VAh.
    pub active_energy: f64,
    pub received_energy: f64,
    pub reactive_energy: f64,
    pub apparent_energy: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_491_552_345;

    #[test]
    fn same_seed_same_state_other_seed_other_state() {
        let a = Load::new(7).state(NOW, 3);
        let b = Load::new(7).state(NOW, 3);
        let c = Load::new(8).state(NOW, 3);
        assert_eq!(a.active, b.active);
        assert_ne!(a.active, c.active);
    }

    #[test]
    fn power_is_voltage_times_current_times_power_factor() {
        let s = Load::new(1).state(NOW, 0);
        for p in 0..3 {
            assert!((s.voltage_ln[p] - 230.0).abs() < 4.0);
            let expected = s.voltage_ln[p] * s.current[p] * s.power_factor[p];
            assert!((s.active[p] - expected).abs() < 1e-9);
            let s2 = s.active[p].powi(2) + s.reactive[p].powi(2);
            assert!((s2.sqrt() - s.apparent[p]).abs() < 1e-6);
        }
        assert!((s.frequency - 50.0).abs() < 0.05);
        assert!(s
            .voltage_ll
            .iter()
            .all(|v| (v / 3f64.sqrt() - 230.0).abs() < 5.0));
    }

    #[test]
    fn energy_rises_at_the_rate_of_power() {
        let load = Load::new(42);
        let (t0, t1) = (NOW, NOW + 600_000);
        let e0 = load.state(t0, 0).active_energy;
        let e1 = load.state(t1, 0).active_energy;
        let mean_w: f64 = (0..600)
            .map(|k| load.state(t0 + k * 1000, k).active.iter().sum::<f64>())
            .sum::<f64>()
            / 600.0;
        let expected_wh = mean_w * 600.0 / 3600.0;
        assert!(e1 > e0);
        assert!(
            ((e1 - e0) / expected_wh - 1.0).abs() < 0.02,
            "{e0} {e1} {expected_wh}"
        );
        let mut last = f64::MIN;
        for k in 0..1000 {
            let e = load.state(t0 + k * 37, 0).active_energy;
            assert!(e >= last);
            last = e;
        }
    }

    #[test]
    fn counters_are_monotonic_and_inputs_flip() {
        let load = Load::new(3);
        assert!(load.pulses(1, NOW + 10_000) > load.pulses(1, NOW));
        let states: Vec<bool> = (0..40).map(|k| load.input(1, NOW + k * 20_000)).collect();
        assert!(states.iter().any(|&s| s) && states.iter().any(|&s| !s));
    }
}
