//! Python values to forklog [`Value`]s and back.
//!
//! Accepted: `float`, `int` (64-bit), `bool`, `str`, `bytes`, `None`, lists and str-keyed dicts of these,
//! NumPy scalars and 0-d arrays (converted through `.item()`). Anything else is a `TypeError` that names
//! the key (and the path inside a nested value). Floats keep their exact bits (NaN payloads, -0.0, ±inf).

use std::collections::BTreeMap;

use forklog::{Key, Metrics, Value};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyType};

use crate::errors::type_error;

/// Deepest nesting accepted (the engine's own limit is checked again when writing).
const MAX_DEPTH: usize = 64;

/// Metric keys that `history` rows use for their own fields.
pub const RESERVED: [&str; 2] = ["_step", "_timestamp"];

/// `numpy.generic` and `numpy.ndarray`, if NumPy can be imported.
static NUMPY_TYPES: PyOnceLock<Option<(Py<PyType>, Py<PyType>)>> = PyOnceLock::new();

fn numpy_types(py: Python<'_>) -> Option<&(Py<PyType>, Py<PyType>)> {
    NUMPY_TYPES
        .get_or_init(py, || {
            let np = py.import("numpy").ok()?;
            let generic = np.getattr("generic").ok()?.cast_into::<PyType>().ok()?.unbind();
            let ndarray = np.getattr("ndarray").ok()?.cast_into::<PyType>().ok()?.unbind();
            Some((generic, ndarray))
        })
        .as_ref()
}

/// Why a value was refused: the path inside it (innermost last) and what is wrong.
pub struct Refused {
    path: Vec<String>,
    reason: String,
}

impl Refused {
    fn new(reason: String) -> Refused {
        Refused { path: Vec::new(), reason }
    }

    fn at(mut self, segment: String) -> Refused {
        self.path.push(segment);
        self
    }

    /// The `TypeError` for the value of `what` (e.g. `metric 'loss'`).
    pub fn into_err(self, what: &str) -> PyErr {
        let inner: String = self.path.iter().rev().map(String::as_str).collect();
        type_error(format!("{what}{inner}: {}; nothing was written", self.reason))
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
}

/// Converts one Python value.
pub fn value(obj: &Bound<'_, PyAny>) -> Result<Value, Refused> {
    value_at(obj, 0)
}

fn value_at(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Refused> {
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Ok(Value::Float(f.value()));
    }
    if obj.is_instance_of::<PyBool>() {
        return Ok(Value::Bool(obj.is_truthy().map_err(|e| Refused::new(e.to_string()))?));
    }
    if let Ok(i) = obj.cast::<PyInt>() {
        return i
            .extract::<i64>()
            .map(Value::Int)
            .map_err(|_| Refused::new(format!("int {i} does not fit in 64 bits")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return s.to_cow().map(|c| Value::Str(c.into_owned())).map_err(|e| Refused::new(e.to_string()));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Value::Bytes(b.as_bytes().to_vec()));
    }
    if let Ok(list) = obj.cast::<PyList>() {
        if depth >= MAX_DEPTH {
            return Err(Refused::new(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mut out = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            out.push(value_at(&item, depth + 1).map_err(|r| r.at(format!("[{i}]")))?);
        }
        return Ok(Value::List(out));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        if depth >= MAX_DEPTH {
            return Err(Refused::new(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let mut out = BTreeMap::new();
        for (k, v) in dict.iter() {
            let key = dict_key(&k)?;
            let val = value_at(&v, depth + 1).map_err(|r| r.at(format!("[{key:?}]")))?;
            out.insert(forklog::Key::from(key), val);
        }
        return Ok(Value::Map(out));
    }
    let py = obj.py();
    if let Some((generic, ndarray)) = numpy_types(py) {
        let scalar = obj.is_instance(generic.bind(py)).unwrap_or(false);
        let zero_d = !scalar
            && obj.is_instance(ndarray.bind(py)).unwrap_or(false)
            && obj.getattr("ndim").and_then(|n| n.extract::<usize>()).unwrap_or(1) == 0;
        if scalar || zero_d {
            let item = obj.call_method0("item").map_err(|e| Refused::new(e.to_string()))?;
            let plain = item.is_instance_of::<PyFloat>()
                || item.is_instance_of::<PyInt>()
                || item.is_instance_of::<PyString>()
                || item.is_instance_of::<PyBytes>();
            if plain {
                return value_at(&item, depth);
            }
            return Err(Refused::new(format!("unsupported NumPy type {}", type_name(obj))));
        }
    }
    Err(Refused::new(format!(
        "unsupported type {} (use float, int, bool, str, bytes, None, lists and dicts of these, or NumPy scalars)",
        type_name(obj)
    )))
}

/// A dict key, which must be a `str`.
fn dict_key(k: &Bound<'_, PyAny>) -> Result<String, Refused> {
    match k.cast::<PyString>() {
        Ok(s) => s.to_cow().map(|c| c.into_owned()).map_err(|e| Refused::new(e.to_string())),
        Err(_) => Err(Refused::new(format!("dict keys must be str, got {} key {}", type_name(k), repr(k)))),
    }
}

/// `repr(obj)`, or a placeholder.
pub fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "<unprintable>".into())
}

/// What a `log` row is: all floats (the fast path, no `Value`s) or general metrics.
pub enum Row {
    /// Every value a Python `float`: (key, value) in the dict's order.
    Floats(Vec<(String, f64)>),
    /// Any other row.
    General(Metrics),
}

/// The `TypeError` for a non-dict argument.
fn not_a_dict(what: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    type_error(format!("{what} takes a dict of str keys, got {}", type_name(obj)))
}

/// A metric key: a `str`, not one of [`RESERVED`] when `reserved` is set.
fn metric_key(k: &Bound<'_, PyAny>, reserved: bool) -> PyResult<String> {
    let key = dict_key(k).map_err(|r| type_error(format!("{}; nothing was written", r.reason)))?;
    if reserved && RESERVED.contains(&key.as_str()) {
        return Err(crate::errors::value_error(format!(
            "metric key {key:?} is reserved (history rows use it for their own field); nothing was written"
        )));
    }
    Ok(key)
}

/// Converts a `log` argument. Refuses (before anything is written) non-dicts, non-str keys, reserved keys
/// and unsupported values.
pub fn log_row(data: &Bound<'_, PyAny>) -> PyResult<Row> {
    let dict = data.cast::<PyDict>().map_err(|_| not_a_dict("log", data))?;
    let mut floats = Vec::with_capacity(dict.len());
    let mut general: Option<Metrics> = None;
    for (k, v) in dict.iter() {
        let key = metric_key(&k, true)?;
        if general.is_none() {
            if let Ok(f) = v.cast::<PyFloat>() {
                floats.push((key, f.value()));
                continue;
            }
            let mut m: Metrics = Metrics::new();
            for (fk, fv) in floats.drain(..) {
                m.insert(Key::from(fk), Value::Float(fv));
            }
            general = Some(m);
        }
        let val = value(&v).map_err(|r| r.into_err(&format!("metric {key:?}")))?;
        if let Some(m) = general.as_mut() {
            m.insert(Key::from(key), val);
        }
    }
    Ok(match general {
        Some(m) => Row::General(m),
        None => Row::Floats(floats),
    })
}

/// Converts a config or summary patch (a dict; any str key).
pub fn patch(what: &str, data: &Bound<'_, PyAny>) -> PyResult<Metrics> {
    let dict = data.cast::<PyDict>().map_err(|_| not_a_dict(what, data))?;
    let mut m = Metrics::new();
    for (k, v) in dict.iter() {
        let key = metric_key(&k, false)?;
        let val = value(&v).map_err(|r| r.into_err(&format!("{what} key {key:?}")))?;
        m.insert(Key::from(key), val);
    }
    Ok(m)
}

/// Converts a forklog value to Python.
pub fn to_py<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Int(i) => i.into_pyobject(py)?.into_any(),
        Value::Float(x) => PyFloat::new(py, *x).into_any(),
        Value::Str(s) => PyString::new(py, s).into_any(),
        Value::Bytes(b) => PyBytes::new(py, b).into_any(),
        Value::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Map(map) => map_to_py(py, map.iter().map(|(k, v)| (&**k, v)))?.into_any(),
        // A value kind added to the engine later: its text form.
        #[allow(unreachable_patterns)]
        other => PyString::new(py, &other.to_string()).into_any(),
    })
}

/// A dict from (key, value) pairs.
pub fn map_to_py<'py, 'a>(
    py: Python<'py>,
    items: impl IntoIterator<Item = (&'a str, &'a Value)>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in items {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict)
}
