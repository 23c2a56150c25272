//! `Field`, `RegisterLayout`, `Decoded`: register decoding from Python, and
//! `REGISTER_TYPES`, the facts of every register type.

use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyTuple};

use crate::decode::{Block, DataType, Decoded, FieldSpec, Layout, Sentinel, WordOrder};
use crate::Error;

/// What a register type is (see [`crate::datatype`]): the one definition
/// the Python side reads its type lists from.
#[pyclass(module = "panelfast._native", name = "RegisterType", frozen, get_all)]
pub struct PyRegisterType {
    name: &'static str,
    registers: u16,
    integer: bool,
    exact: bool,
    signed: bool,
    sentinel: Option<u64>,
}

#[pymethods]
impl PyRegisterType {
    fn __repr__(&self) -> String {
        format!("RegisterType({:?})", self.name)
    }
}

/// `REGISTER_TYPES`: every register type's facts, in the model files' order.
pub(crate) fn register_types(py: Python<'_>) -> PyResult<Bound<'_, PyTuple>> {
    let types = DataType::ALL.map(|t| {
        let facts = t.facts();
        PyRegisterType {
            name: facts.name,
            registers: facts.registers,
            integer: facts.integer,
            exact: facts.exact,
            signed: facts.signed,
            sentinel: facts.sentinel,
        }
    });
    PyTuple::new(py, types)
}

/// One field of a register layout.
#[pyclass(module = "panelfast._native", name = "Field", frozen)]
pub struct PyField {
    pub(crate) spec: FieldSpec,
}

#[pymethods]
impl PyField {
    #[new]
    #[pyo3(signature = (address, r#type, order = "ABCD", scale = 1.0, offset = 0.0, invalid = None, bit = 0, bits = 1, length = 0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        address: i64,
        r#type: &str,
        order: &str,
        scale: f64,
        offset: f64,
        invalid: Option<&Bound<'_, PyAny>>,
        bit: u8,
        bits: u8,
        length: u16,
    ) -> PyResult<Self> {
        let layout = |m: String| PyErr::from(Error::Layout(m));
        let address = u16::try_from(address).map_err(|_| {
            layout(format!(
                "address {address} is not a register address (0..=65535)"
            ))
        })?;
        let data_type = DataType::from_name(r#type).ok_or_else(|| {
            let names: Vec<_> = DataType::ALL.iter().map(|t| t.name()).collect();
            layout(format!("type {type:?} is not one of {}", names.join(", "), type = r#type))
        })?;
        let order = WordOrder::from_name(order).ok_or_else(|| {
            layout(format!(
                "order {order:?} is not one of ABCD, CDAB, BADC, DCBA"
            ))
        })?;
        let sentinel = match invalid {
            None => Sentinel::Default,
            Some(v) if v.is_instance_of::<PyBool>() => {
                if v.extract::<bool>()? {
                    Sentinel::Default
                } else {
                    Sentinel::Disabled
                }
            }
            Some(v) => Sentinel::Raw(v.extract::<u64>().map_err(|_| {
                layout(format!(
                    "invalid must be None, False or a raw pattern (int ≥ 0), not {v}"
                ))
            })?),
        };
        let spec = FieldSpec {
            address,
            data_type,
            order,
            scale,
            offset,
            sentinel,
            bit,
            bits,
            length,
        };
        // Check alone now, so a bad field is reported where it is made.
        Layout::compile(vec![spec.clone()])?;
        Ok(PyField { spec })
    }

    #[getter]
    fn address(&self) -> u16 {
        self.spec.address
    }

    #[getter]
    fn r#type(&self) -> &'static str {
        self.spec.data_type.name()
    }

    #[getter]
    fn registers(&self) -> u16 {
        self.spec.registers()
    }

    #[getter]
    fn exact(&self) -> bool {
        self.spec.is_exact()
    }

    fn __repr__(&self) -> String {
        let order = WordOrder::ALL
            .iter()
            .find(|(o, _)| *o == self.spec.order)
            .map_or("?", |(_, n)| n);
        format!(
            "Field(address={}, type={:?}, order={:?}, scale={}, offset={})",
            self.spec.address,
            self.spec.data_type.name(),
            order,
            self.spec.scale,
            self.spec.offset
        )
    }
}

/// Decoded values of a layout, one entry per field.
#[pyclass(module = "panelfast._native", name = "Decoded", frozen)]
pub struct PyDecoded {
    #[pyo3(get)]
    values: Py<PyArray1<f64>>,
    #[pyo3(get)]
    integers: Py<PyArray1<i64>>,
    #[pyo3(get)]
    valid: Py<PyArray1<bool>>,
    len: usize,
}

#[pymethods]
impl PyDecoded {
    fn __len__(&self) -> usize {
        self.len
    }
}

/// A compiled register layout.
#[pyclass(module = "panelfast._native", name = "RegisterLayout", frozen)]
pub struct PyRegisterLayout {
    layout: Layout,
}

/// Blocks from Python, copied into one buffer so the GIL can be released.
struct OwnedBlocks {
    registers: Vec<u16>,
    shape: Vec<(u16, usize)>,
}

impl OwnedBlocks {
    fn extract(blocks: Vec<(i64, Bound<'_, PyAny>)>) -> PyResult<Self> {
        let mut registers = Vec::new();
        let mut shape = Vec::with_capacity(blocks.len());
        for (k, (start, data)) in blocks.into_iter().enumerate() {
            let start = u16::try_from(start).map_err(|_| {
                Error::Decode(format!(
                    "block {k}: start {start} is not a register address (0..=65535)"
                ))
            })?;
            let before = registers.len();
            // The usual case, a uint16 array, is copied without per-item work.
            if let Ok(array) = data.cast::<PyArray1<u16>>() {
                let view = array.readonly();
                match view.as_slice() {
                    Ok(slice) => registers.extend_from_slice(slice),
                    Err(_) => registers.extend(view.as_array().iter().copied()),
                }
            } else {
                registers.extend(data.extract::<Vec<u16>>()?);
            }
            shape.push((start, registers.len() - before));
        }
        Ok(OwnedBlocks { registers, shape })
    }

    fn blocks(&self) -> Vec<Block<'_>> {
        let mut at = 0;
        self.shape
            .iter()
            .map(|&(start, n)| {
                let block = Block {
                    start,
                    registers: &self.registers[at..at + n],
                };
                at += n;
                block
            })
            .collect()
    }
}

#[pymethods]
impl PyRegisterLayout {
    #[new]
    fn new(fields: Vec<PyRef<'_, PyField>>) -> PyResult<Self> {
        let specs = fields.iter().map(|f| f.spec.clone()).collect();
        Ok(PyRegisterLayout {
            layout: Layout::compile(specs)?,
        })
    }

    fn __len__(&self) -> usize {
        self.layout.len()
    }

    /// Which fields are exact integers (their value is in `Decoded.integers`).
    #[getter]
    fn exact<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<bool>> {
        let exact: Vec<bool> = self
            .layout
            .fields()
            .iter()
            .map(FieldSpec::is_exact)
            .collect();
        PyArray1::from_vec(py, exact)
    }

    /// Decode blocks `[(start, registers), ...]`; a field outside them is a DecodeError.
    #[pyo3(signature = (blocks, *, partial = false))]
    fn decode(
        &self,
        py: Python<'_>,
        blocks: Vec<(i64, Bound<'_, PyAny>)>,
        partial: bool,
    ) -> PyResult<PyDecoded> {
        let owned = OwnedBlocks::extract(blocks)?;
        let decoded = py.detach(|| {
            let mut out = Decoded::default();
            let blocks = owned.blocks();
            if partial {
                self.layout.decode_partial(&blocks, &mut out)
            } else {
                self.layout.decode(&blocks, &mut out)
            }
            .map(|()| out)
        })?;
        Ok(PyDecoded {
            len: decoded.valid.len(),
            values: PyArray1::from_vec(py, decoded.values).unbind(),
            integers: PyArray1::from_vec(py, decoded.integers).unbind(),
            valid: PyArray1::from_vec(py, decoded.valid).unbind(),
        })
    }

    /// ASCII fields as text; None for the other fields.
    fn decode_text(&self, blocks: Vec<(i64, Bound<'_, PyAny>)>) -> PyResult<Vec<Option<String>>> {
        let owned = OwnedBlocks::extract(blocks)?;
        Ok(self.layout.decode_text(&owned.blocks())?)
    }
}
