//! Alarm evaluation (cloud protocol §8): threshold, hysteresis, delay.
//!
//! Alarms are evaluated at the acquisition rate, on every new reading, not
//! only at sampling instants: a short excursion between two samples still
//! raises its alarm.
//!
//! An `over` alarm becomes active once its measurement has stayed strictly
//! above the threshold for at least `delay`; it becomes inactive when the
//! value is strictly below `threshold - hysteresis`. An `under` alarm mirrors
//! it (below the threshold; inactive above `threshold + hysteresis`).
//! A reading that is not available proves nothing: it leaves an active alarm
//! active and restarts a pending delay, so an alarm never fires on a gap. A
//! point never read (not available with read time 0: just started, or its
//! device is no longer configured) is no reading at all and changes nothing.
//! Each transition is an [`AlarmEvent`] stamped with the read time and value
//! of the reading that completed it.

use crate::{Error, Result};

/// Which side of the threshold is the alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Over,
    Under,
}

/// One alarm of the remote configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    /// The alarm's id in the remote configuration.
    pub id: String,
    /// Index of its measurement in the values given to [`AlarmSet::evaluate`].
    pub input: u32,
    pub condition: Condition,
    pub threshold: f64,
    pub hysteresis: f64,
    pub delay_ms: i64,
}

/// A transition of one alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmEvent {
    /// Index of the alarm in the set.
    pub alarm: u32,
    pub active: bool,
    /// Read time (unix ms) of the reading that completed the transition.
    pub ts_ms: i64,
    pub value: f64,
}

/// What of an alarm's state must survive a restart (spec §8: each transition
/// is one event, so an active alarm must not be announced again after one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SavedState {
    pub active: bool,
    /// Read time of the first reading of the excursion, while the delay runs.
    pub since_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct State {
    active: bool,
    /// Read time of the first reading of the current excursion, while the delay runs.
    since_ms: Option<i64>,
    /// Read time of the last reading evaluated, so a reading counts once.
    last_read_ms: Option<i64>,
}

/// The alarms in force and their states.
#[derive(Debug, Clone)]
pub struct AlarmSet {
    specs: Vec<AlarmSpec>,
    states: Vec<State>,
}

impl AlarmSet {
    /// Check the alarms: finite threshold, hysteresis ≥ 0, delay ≥ 0.
    pub fn new(specs: Vec<AlarmSpec>) -> Result<AlarmSet> {
        for (i, a) in specs.iter().enumerate() {
            let bad = |m: String| Err(Error::Alarm(format!("alarm {i} ({}): {m}", a.id)));
            if !a.threshold.is_finite() {
                return bad(format!("threshold must be finite, not {}", a.threshold));
            }
            if !a.hysteresis.is_finite() || a.hysteresis < 0.0 {
                return bad(format!(
                    "hysteresis must be finite and ≥ 0, not {}",
                    a.hysteresis
                ));
            }
            if a.delay_ms < 0 {
                return bad(format!("delay must be ≥ 0, not {} ms", a.delay_ms));
            }
        }
        let states = vec![State::default(); specs.len()];
        Ok(AlarmSet { specs, states })
    }

    /// A new set that keeps the state of every alarm whose definition did not
    /// change, so re-applying a configuration neither re-raises nor clears it.
    pub fn carry_over(&self, specs: Vec<AlarmSpec>) -> Result<AlarmSet> {
        let mut next = AlarmSet::new(specs)?;
        for (spec, state) in next.specs.iter().zip(next.states.iter_mut()) {
            if let Some(k) = self.specs.iter().position(|old| old == spec) {
                *state = self.states[k];
            }
        }
        Ok(next)
    }

    pub fn len(&self) -> usize {
        self.specs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub fn specs(&self) -> &[AlarmSpec] {
        &self.specs
    }

    /// Whether each alarm is active.
    pub fn active(&self) -> Vec<bool> {
        self.states.iter().map(|s| s.active).collect()
    }

    /// How many inputs [`AlarmSet::evaluate`] needs: the highest input + 1.
    pub fn inputs_needed(&self) -> usize {
        self.specs
            .iter()
            .map(|a| a.input as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// Each alarm's state as it must be kept across a restart.
    pub fn saved_states(&self) -> Vec<SavedState> {
        self.states
            .iter()
            .map(|s| SavedState {
                active: s.active,
                since_ms: s.since_ms,
            })
            .collect()
    }

    /// Put back states saved before a restart, one per alarm (`None`: the
    /// alarm starts afresh). The next reading of each alarm is evaluated.
    pub fn restore(&mut self, saved: &[Option<SavedState>]) -> Result<()> {
        if saved.len() != self.states.len() {
            return Err(Error::Alarm(format!(
                "{} saved states for {} alarms",
                saved.len(),
                self.states.len()
            )));
        }
        for (state, saved) in self.states.iter_mut().zip(saved) {
            if let Some(saved) = saved {
                *state = State {
                    active: saved.active,
                    since_ms: if saved.active { None } else { saved.since_ms },
                    last_read_ms: None,
                };
            }
        }
        Ok(())
    }

    /// Evaluate every alarm on the latest readings: `values[i]`, `valid[i]`
    /// and `read_ms[i]` (unix ms) of input `i`. Returns the transitions.
    pub fn evaluate(
        &mut self,
        values: &[f64],
        valid: &[bool],
        read_ms: &[i64],
    ) -> Result<Vec<AlarmEvent>> {
        let n = values.len();
        if valid.len() != n || read_ms.len() != n {
            return Err(Error::Alarm(format!(
                "{n} values but {} validity flags and {} read times",
                valid.len(),
                read_ms.len()
            )));
        }
        if let Some(a) = self.specs.iter().find(|a| a.input as usize >= n) {
            return Err(Error::Alarm(format!(
                "alarm {} reads input {} but only {n} are given",
                a.id, a.input
            )));
        }
        let mut events = Vec::new();
        for (k, (spec, state)) in self.specs.iter().zip(self.states.iter_mut()).enumerate() {
            let i = spec.input as usize;
            let t = read_ms[i];
            if (t == 0 && !valid[i]) || state.last_read_ms == Some(t) {
                continue; // never read, or this reading was already evaluated
            }
            state.last_read_ms = Some(t);
            let v = values[i];
            if !valid[i] || v.is_nan() {
                state.since_ms = None;
                continue;
            }
            let (beyond, back) = match spec.condition {
                Condition::Over => (v > spec.threshold, v < spec.threshold - spec.hysteresis),
                Condition::Under => (v < spec.threshold, v > spec.threshold + spec.hysteresis),
            };
            if state.active {
                if back {
                    state.active = false;
                    state.since_ms = None;
                    events.push(AlarmEvent {
                        alarm: k as u32,
                        active: false,
                        ts_ms: t,
                        value: v,
                    });
                }
            } else if beyond {
                let since = *state.since_ms.get_or_insert(t);
                if t - since >= spec.delay_ms {
                    state.active = true;
                    state.since_ms = None;
                    events.push(AlarmEvent {
                        alarm: k as u32,
                        active: true,
                        ts_ms: t,
                        value: v,
                    });
                }
            } else {
                state.since_ms = None;
            }
        }
        Ok(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn over(threshold: f64, hysteresis: f64, delay_ms: i64) -> AlarmSet {
        AlarmSet::new(vec![AlarmSpec {
            id: "a1".into(),
            input: 0,
            condition: Condition::Over,
            threshold,
            hysteresis,
            delay_ms,
        }])
        .expect("valid alarm")
    }

    /// Feed `(t, value)` readings; return the transitions as (t, active).
    fn feed(set: &mut AlarmSet, readings: &[(i64, f64)]) -> Vec<(i64, bool)> {
        readings
            .iter()
            .flat_map(|&(t, v)| set.evaluate(&[v], &[!v.is_nan()], &[t]).expect("evaluates"))
            .map(|e| (e.ts_ms, e.active))
            .collect()
    }

    #[test]
    fn delay_must_elapse_over_the_threshold() {
        let mut set = over(253.0, 2.0, 10_000);
        let events = feed(
            &mut set,
            &[
                (0, 254.0),
                (5_000, 255.0),
                (9_000, 252.0),
                (10_000, 254.0),
                (19_000, 254.0),
                (20_000, 254.5),
            ],
        );
        assert_eq!(
            events,
            vec![(20_000, true)],
            "the dip at 9 s restarts the delay"
        );
    }

    #[test]
    fn hysteresis_holds_the_alarm() {
        let mut set = over(253.0, 2.0, 0);
        let events = feed(
            &mut set,
            &[(0, 254.0), (1, 252.0), (2, 251.0), (3, 250.9), (4, 253.5)],
        );
        assert_eq!(events, vec![(0, true), (3, false), (4, true)]);
    }

    #[test]
    fn under_mirrors_over() {
        let mut set = AlarmSet::new(vec![AlarmSpec {
            id: "low".into(),
            input: 0,
            condition: Condition::Under,
            threshold: 207.0,
            hysteresis: 3.0,
            delay_ms: 0,
        }])
        .expect("valid");
        assert_eq!(
            feed(&mut set, &[(0, 206.0), (1, 209.0), (2, 210.5)]),
            vec![(0, true), (2, false)]
        );
    }

    #[test]
    fn missing_readings_prove_nothing() {
        let mut set = over(10.0, 0.0, 2_000);
        assert!(feed(
            &mut set,
            &[(0, 11.0), (1_000, f64::NAN), (2_000, 11.0), (3_000, 11.0)]
        )
        .is_empty());
        assert_eq!(feed(&mut set, &[(4_000, 11.0)]), vec![(4_000, true)]);
        assert!(
            feed(&mut set, &[(5_000, f64::NAN)]).is_empty(),
            "a gap does not clear it"
        );
        assert_eq!(set.active(), vec![true]);
    }

    #[test]
    fn a_reading_counts_once() {
        let mut set = over(10.0, 0.0, 0);
        assert_eq!(feed(&mut set, &[(0, 11.0)]).len(), 1);
        assert!(
            feed(&mut set, &[(0, 5.0)]).is_empty(),
            "same read time: not re-evaluated"
        );
    }

    #[test]
    fn carry_over_keeps_unchanged_alarms() {
        let mut set = over(10.0, 0.0, 0);
        feed(&mut set, &[(0, 11.0)]);
        let same = set.carry_over(set.specs().to_vec()).expect("valid");
        assert_eq!(same.active(), vec![true]);
        let mut changed = set.specs().to_vec();
        changed[0].threshold = 20.0;
        assert_eq!(
            set.carry_over(changed).expect("valid").active(),
            vec![false]
        );
    }

    #[test]
    fn a_point_never_read_changes_nothing() {
        let mut set = over(10.0, 0.0, 2_000);
        assert!(feed(&mut set, &[(1_000, 11.0)]).is_empty());
        assert!(set
            .evaluate(&[f64::NAN], &[false], &[0])
            .expect("ok")
            .is_empty());
        assert_eq!(
            set.saved_states()[0].since_ms,
            Some(1_000),
            "the pending delay still runs"
        );
        assert_eq!(feed(&mut set, &[(3_000, 11.0)]), vec![(3_000, true)]);
    }

    #[test]
    fn saved_states_restore_active_alarms_and_pending_delays() {
        let mut before = AlarmSet::new(vec![
            over(10.0, 0.0, 0).specs()[0].clone(),
            AlarmSpec {
                id: "slow".into(),
                input: 1,
                condition: Condition::Over,
                threshold: 10.0,
                hysteresis: 0.0,
                delay_ms: 5_000,
            },
        ])
        .expect("valid");
        before
            .evaluate(&[11.0, 11.0], &[true, true], &[1_000, 1_000])
            .expect("ok");
        let saved = before.saved_states();
        assert_eq!(
            saved,
            vec![
                SavedState {
                    active: true,
                    since_ms: None
                },
                SavedState {
                    active: false,
                    since_ms: Some(1_000)
                },
            ]
        );
        let mut after = AlarmSet::new(before.specs().to_vec()).expect("valid");
        after
            .restore(&saved.iter().copied().map(Some).collect::<Vec<_>>())
            .expect("same length");
        let events = after
            .evaluate(&[11.0, 11.0], &[true, true], &[6_000, 6_000])
            .expect("ok");
        assert_eq!(
            events
                .iter()
                .map(|e| (e.alarm, e.active))
                .collect::<Vec<_>>(),
            vec![(1, true)],
            "the active one is not announced again; the delay ran since 1 s"
        );
        assert_eq!(after.inputs_needed(), 2);
        assert!(after.restore(&[None]).is_err());
        let mut fresh = AlarmSet::new(before.specs().to_vec()).expect("valid");
        fresh.restore(&[None, None]).expect("same length");
        assert_eq!(fresh.active(), vec![false, false]);
    }

    #[test]
    fn bad_alarms_and_inputs_are_errors() {
        let mut spec = over(1.0, 0.0, 0).specs()[0].clone();
        spec.threshold = f64::INFINITY;
        assert!(AlarmSet::new(vec![spec.clone()]).is_err());
        spec.threshold = 1.0;
        spec.hysteresis = -1.0;
        assert!(AlarmSet::new(vec![spec]).is_err());
        let mut set = over(1.0, 0.0, 0);
        assert!(set.evaluate(&[], &[], &[]).is_err());
        assert!(set.evaluate(&[1.0], &[true], &[]).is_err());
    }
}
