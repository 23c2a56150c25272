//! `SampleRing`, `SeriesSet`: sample rings and the series drained from them.

use numpy::{AllowTypeChange, PyArray1, PyArrayLike1, PyArrayMethods};
use pyo3::prelude::*;

use crate::ring::{RingSet, SampleKind};
use crate::series::{Series, SeriesValues};
use crate::Error;

/// Periodic series of samples, held in Rust (no per-sample Python objects).
#[pyclass(module = "panelfast._native", name = "SeriesSet", frozen)]
pub struct PySeriesSet {
    pub(crate) series: Vec<Series>,
}

#[pymethods]
impl PySeriesSet {
    /// Build from `[(measurement, t0_ms, dt_ms, values), ...]`; a float64
    /// array is a float series (NaN = nil), an int64 array an integer one.
    #[staticmethod]
    fn from_series(items: Vec<(u32, i64, i64, Bound<'_, PyAny>)>) -> PyResult<Self> {
        let mut series = Vec::with_capacity(items.len());
        for (k, (measurement, t0_ms, dt_ms, values)) in items.into_iter().enumerate() {
            if dt_ms <= 0 {
                return Err(Error::Batch(format!(
                    "series {k}: dt_ms must be positive, not {dt_ms}"
                ))
                .into());
            }
            let values = if let Ok(a) = values.cast::<PyArray1<f64>>() {
                SeriesValues::Float(a.to_vec()?)
            } else if let Ok(a) = values.cast::<PyArray1<i64>>() {
                SeriesValues::Integer(a.to_vec()?)
            } else {
                return Err(Error::Batch(format!(
                    "series {k}: values must be a 1-D float64 or int64 numpy array"
                ))
                .into());
            };
            series.push(Series {
                measurement,
                t0_ms,
                dt_ms,
                values,
            });
        }
        Ok(PySeriesSet { series })
    }

    fn __len__(&self) -> usize {
        self.series.len()
    }

    /// Samples in all the series, nils included.
    #[getter]
    fn samples(&self) -> usize {
        self.series.iter().map(Series::len).sum()
    }

    /// `[(measurement, t0_ms, dt_ms, values array), ...]`, one entry per series.
    fn to_list<'py>(&self, py: Python<'py>) -> Vec<(u32, i64, i64, Bound<'py, PyAny>)> {
        self.series
            .iter()
            .map(|s| {
                let values = match &s.values {
                    SeriesValues::Float(v) => PyArray1::from_slice(py, v).into_any(),
                    SeriesValues::Integer(v) => PyArray1::from_slice(py, v).into_any(),
                };
                (s.measurement, s.t0_ms, s.dt_ms, values)
            })
            .collect()
    }
}

/// Counters of a `SampleRing`.
#[pyclass(module = "panelfast._native", name = "RingStats", frozen, get_all)]
pub struct PyRingStats {
    held: u64,
    pending: u64,
    dropped: u64,
    dropped_undrained: u64,
}

/// One bounded ring of samples per measurement.
#[pyclass(module = "panelfast._native", name = "SampleRing")]
pub struct PySampleRing {
    rings: RingSet,
}

#[pymethods]
impl PySampleRing {
    /// `kinds[i]` is "float" or "int"; `periods_ms[i]` the sampling period of measurement `i`.
    #[new]
    fn new(kinds: Vec<String>, periods_ms: Vec<i64>, capacity: usize) -> PyResult<Self> {
        if kinds.len() != periods_ms.len() {
            return Err(Error::Ring(format!(
                "{} kinds but {} periods",
                kinds.len(),
                periods_ms.len()
            ))
            .into());
        }
        let mut measurements = Vec::with_capacity(kinds.len());
        for (i, (kind, period)) in kinds.iter().zip(periods_ms).enumerate() {
            let kind = match kind.as_str() {
                "float" => SampleKind::Float,
                "int" => SampleKind::Integer,
                other => {
                    return Err(Error::Ring(format!(
                        "measurement {i}: kind {other:?} is not \"float\" or \"int\""
                    ))
                    .into())
                }
            };
            measurements.push((kind, period));
        }
        Ok(PySampleRing {
            rings: RingSet::new(&measurements, capacity)?,
        })
    }

    fn __len__(&self) -> usize {
        self.rings.len()
    }

    #[getter]
    fn capacity(&self) -> usize {
        self.rings.capacity()
    }

    /// Append the sampling instant `t_ms` for the measurements `indices`.
    fn append(
        &mut self,
        t_ms: i64,
        indices: PyArrayLike1<'_, i64, AllowTypeChange>,
        floats: PyArrayLike1<'_, f64, AllowTypeChange>,
        integers: PyArrayLike1<'_, i64, AllowTypeChange>,
        valid: PyArrayLike1<'_, bool, AllowTypeChange>,
    ) -> PyResult<()> {
        let indices: Vec<u32> = indices
            .as_array()
            .iter()
            .map(|&i| {
                u32::try_from(i).map_err(|_| {
                    Error::Ring(format!("measurement index {i} is negative or too large"))
                })
            })
            .collect::<Result<_, _>>()?;
        let floats = floats.as_array();
        let integers = integers.as_array();
        let valid = valid.as_array();
        let (Some(f), Some(n), Some(v)) =
            (floats.as_slice(), integers.as_slice(), valid.as_slice())
        else {
            return Err(Error::Ring("arrays must be contiguous".into()).into());
        };
        Ok(self.rings.append(t_ms, &indices, f, n, v)?)
    }

    /// Hand over the pending samples taken before `until_ms` (all if None).
    #[pyo3(signature = (until_ms = None))]
    fn drain(&mut self, py: Python<'_>, until_ms: Option<i64>) -> PySeriesSet {
        let rings = &mut self.rings;
        PySeriesSet {
            series: py.detach(|| rings.drain(until_ms)),
        }
    }

    /// The samples held with instants in `[from_ms, to_ms)`, pending or not.
    fn read(&self, from_ms: i64, to_ms: i64) -> PySeriesSet {
        PySeriesSet {
            series: self.rings.read(from_ms, to_ms),
        }
    }

    fn stats(&self) -> PyRingStats {
        let s = self.rings.stats();
        PyRingStats {
            held: s.held,
            pending: s.pending,
            dropped: s.dropped,
            dropped_undrained: s.dropped_undrained,
        }
    }
}
