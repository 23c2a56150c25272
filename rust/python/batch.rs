//! `encode_batches`, `encode_msgpack`, `decode_batch`: spec §7 batches.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};

use super::ring::PySeriesSet;
use crate::batch::{self, BatchOptions, Value};

// The signatures below spell the defaults as literals so Python shows them.
const _: () = assert!(batch::MAX_BODY_BYTES == 256_000);
const _: () = assert!(batch::DEFAULT_LEVEL == 19);
const _: () = assert!(batch::DEFAULT_MAX_DECOMPRESSED == 67_108_864);

/// One encoded batch, ready to send.
#[pyclass(module = "panelfast._native", name = "EncodedBatch", frozen, get_all)]
pub struct PyEncodedBatch {
    seq: u64,
    body: Py<PyBytes>,
    samples: u64,
    raw_bytes: usize,
    first_ms: i64,
    end_ms: i64,
}

#[pymethods]
impl PyEncodedBatch {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "EncodedBatch(seq={}, bytes={}, samples={}, first_ms={}, end_ms={})",
            self.seq,
            self.body.bind(py).as_bytes().len(),
            self.samples,
            self.first_ms,
            self.end_ms
        )
    }
}

/// Cut `series` into batches numbered from `first_seq`, each body at most `max_bytes`.
#[pyfunction]
#[pyo3(signature = (series, config_version, first_seq, *, max_bytes = 256_000, level = 19))]
pub fn encode_batches(
    py: Python<'_>,
    series: &PySeriesSet,
    config_version: &str,
    first_seq: u64,
    max_bytes: usize,
    level: i32,
) -> PyResult<Vec<PyEncodedBatch>> {
    let options = BatchOptions { max_bytes, level };
    let batches =
        py.detach(|| batch::encode_batches(&series.series, config_version, first_seq, options))?;
    Ok(to_python(py, batches))
}

/// Merge stored batch bodies of one configuration version (provisionally
/// numbered 0, or already numbered) into batches numbered from `first_seq`.
#[pyfunction]
#[pyo3(signature = (bodies, config_version, first_seq, *, max_bytes = 256_000, level = 19))]
pub fn rebatch(
    py: Python<'_>,
    bodies: Vec<Vec<u8>>,
    config_version: &str,
    first_seq: u64,
    max_bytes: usize,
    level: i32,
) -> PyResult<Vec<PyEncodedBatch>> {
    let options = BatchOptions { max_bytes, level };
    let batches = py.detach(|| {
        let slices: Vec<&[u8]> = bodies.iter().map(Vec::as_slice).collect();
        batch::rebatch(&slices, config_version, first_seq, options)
    })?;
    Ok(to_python(py, batches))
}

fn to_python(py: Python<'_>, batches: Vec<batch::EncodedBatch>) -> Vec<PyEncodedBatch> {
    batches
        .into_iter()
        .map(|b| PyEncodedBatch {
            seq: b.seq,
            body: PyBytes::new(py, &b.body).unbind(),
            samples: b.samples,
            raw_bytes: b.raw_bytes,
            first_ms: b.first_ms,
            end_ms: b.end_ms,
        })
        .collect()
}

/// The MessagePack map of one batch holding every series (not compressed, not split).
#[pyfunction]
pub fn encode_msgpack<'py>(
    py: Python<'py>,
    series: &PySeriesSet,
    seq: u64,
    config_version: &str,
) -> PyResult<Bound<'py, PyBytes>> {
    let raw = py.detach(|| batch::encode_msgpack(seq, config_version, &series.series))?;
    Ok(PyBytes::new(py, &raw))
}

/// Decode and check a batch body: `{"v", "seq", "config_version", "groups": [...]}`.
#[pyfunction]
#[pyo3(signature = (frame, *, max_decompressed = 67_108_864))]
pub fn decode_batch<'py>(
    py: Python<'py>,
    frame: &[u8],
    max_decompressed: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let decoded = py.detach(|| batch::decode_batch(frame, max_decompressed))?;
    let out = PyDict::new(py);
    out.set_item("v", 1)?;
    out.set_item("seq", decoded.seq)?;
    out.set_item("config_version", decoded.config_version)?;
    let groups = PyList::empty(py);
    for g in decoded.groups {
        let group = PyDict::new(py);
        group.set_item("t0", g.t0_ms)?;
        group.set_item("dt", g.dt_ms)?;
        group.set_item("m", g.measurements)?;
        let lists = PyList::empty(py);
        for values in g.values {
            let list = PyList::empty(py);
            for v in values {
                match v {
                    Value::Nil => list.append(py.None())?,
                    Value::Int(i) => list.append(i)?,
                    Value::Float(f) => list.append(f)?,
                }
            }
            lists.append(list)?;
        }
        group.set_item("v", lists)?;
        groups.append(group)?;
    }
    out.set_item("groups", groups)?;
    Ok(out)
}
