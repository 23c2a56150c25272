//! `AlarmSet`, `AlarmEvent`: alarm evaluation from Python.

use numpy::{AllowTypeChange, PyArrayLike1};
use pyo3::prelude::*;

use crate::alarm::{AlarmSet, AlarmSpec, Condition, SavedState};
use crate::Error;

/// `(id, input, condition, threshold, hysteresis, delay_ms)`.
type AlarmTuple = (String, u32, String, f64, f64, i64);

fn specs(alarms: Vec<AlarmTuple>) -> PyResult<Vec<AlarmSpec>> {
    alarms
        .into_iter()
        .map(|(id, input, condition, threshold, hysteresis, delay_ms)| {
            let condition = match condition.as_str() {
                "over" => Condition::Over,
                "under" => Condition::Under,
                other => {
                    return Err(Error::Alarm(format!(
                        "alarm {id}: condition {other:?} is not \"over\" or \"under\""
                    ))
                    .into())
                }
            };
            Ok(AlarmSpec {
                id,
                input,
                condition,
                threshold,
                hysteresis,
                delay_ms,
            })
        })
        .collect()
}

/// A transition of one alarm.
#[pyclass(module = "panelfast._native", name = "AlarmEvent", frozen, get_all)]
pub struct PyAlarmEvent {
    /// Index of the alarm in its set.
    index: u32,
    /// The alarm's id.
    alarm: String,
    active: bool,
    ts_ms: i64,
    value: f64,
}

#[pymethods]
impl PyAlarmEvent {
    fn __repr__(&self) -> String {
        format!(
            "AlarmEvent(alarm={:?}, active={}, ts_ms={}, value={})",
            self.alarm, self.active, self.ts_ms, self.value
        )
    }
}

/// The alarms in force and their states, evaluated on every new reading.
#[pyclass(module = "panelfast._native", name = "AlarmSet")]
pub struct PyAlarmSet {
    set: AlarmSet,
}

#[pymethods]
impl PyAlarmSet {
    #[new]
    fn new(alarms: Vec<AlarmTuple>) -> PyResult<Self> {
        Ok(PyAlarmSet {
            set: AlarmSet::new(specs(alarms)?)?,
        })
    }

    fn __len__(&self) -> usize {
        self.set.len()
    }

    /// A new set for `alarms`, keeping the state of the ones that did not change.
    fn carry_over(&self, alarms: Vec<AlarmTuple>) -> PyResult<PyAlarmSet> {
        Ok(PyAlarmSet {
            set: self.set.carry_over(specs(alarms)?)?,
        })
    }

    fn active(&self) -> Vec<bool> {
        self.set.active()
    }

    /// How many inputs `evaluate` needs (the highest input + 1).
    fn inputs_needed(&self) -> usize {
        self.set.inputs_needed()
    }

    /// Each alarm's state to keep across a restart: `(active, since_ms)`,
    /// `since_ms` set while a delay runs.
    fn saved_states(&self) -> Vec<(bool, Option<i64>)> {
        self.set
            .saved_states()
            .into_iter()
            .map(|s| (s.active, s.since_ms))
            .collect()
    }

    /// Put back states saved before a restart, one per alarm (`None`: afresh).
    fn restore(&mut self, states: Vec<Option<(bool, Option<i64>)>>) -> PyResult<()> {
        let saved: Vec<Option<SavedState>> = states
            .into_iter()
            .map(|s| s.map(|(active, since_ms)| SavedState { active, since_ms }))
            .collect();
        Ok(self.set.restore(&saved)?)
    }

    /// Evaluate on the latest readings of every input; returns the transitions.
    fn evaluate(
        &mut self,
        values: PyArrayLike1<'_, f64, AllowTypeChange>,
        valid: PyArrayLike1<'_, bool, AllowTypeChange>,
        read_ms: PyArrayLike1<'_, i64, AllowTypeChange>,
    ) -> PyResult<Vec<PyAlarmEvent>> {
        let (values, valid, read_ms) = (values.as_array(), valid.as_array(), read_ms.as_array());
        let (Some(v), Some(ok), Some(t)) =
            (values.as_slice(), valid.as_slice(), read_ms.as_slice())
        else {
            return Err(Error::Alarm("arrays must be contiguous".into()).into());
        };
        let events = self.set.evaluate(v, ok, t)?;
        let specs = self.set.specs();
        Ok(events
            .into_iter()
            .map(|e| PyAlarmEvent {
                index: e.alarm,
                alarm: specs[e.alarm as usize].id.clone(),
                active: e.active,
                ts_ms: e.ts_ms,
                value: e.value,
            })
            .collect())
    }
}
