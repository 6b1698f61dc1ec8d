//! PyO3 bindings: type conversion, error mapping, GIL release, numpy views. No model logic here.

// PyO3 extracts arguments into owned values (Vec, Bound) whether or not the body consumes them.
#![allow(clippy::needless_pass_by_value)]

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ndarray::ArrayView1;
use numpy::PyArray1;
use pyo3::exceptions::{PyKeyboardInterrupt, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyDict, PyList, PyTuple};

use crate::cpu::thread_token;
use crate::error::Error;
use crate::events::{Value, EVENT_KINDS};
use crate::geometry::Geometry;
use crate::machine::{Faults, Machine, MachineConfig, PointInfo};
use crate::memblock::Region;
use crate::migratetype::{MigrateType, MIGRATETYPE_NAMES};
use crate::policy::{FactValue, Policy};
use crate::topology::{Layout, ZoneLimits, ZoneType};
use crate::waits::root_thread;
use crate::workload::Stream;

/// Raise the matching class of `pgdefer.errors`.
fn to_py(py: Python<'_>, e: Error) -> PyErr {
    let (class, args): (&str, Vec<Py<PyAny>>) = match &e {
        Error::Geometry(_) => ("GeometryError", vec![]),
        Error::Topology(_) => ("TopologyError", vec![]),
        Error::InvalidArgument(_) => ("InvalidArgument", vec![]),
        Error::Order(_) => ("OrderError", vec![]),
        Error::UnknownNode(_) => ("UnknownNode", vec![]),
        Error::UnknownZone(_) => ("UnknownZone", vec![]),
        Error::BadFree(_) => ("BadFree", vec![]),
        Error::Phase(_) => ("PhaseError", vec![]),
        Error::OutOfMemory(_) => ("OutOfMemory", vec![]),
        Error::HostMemory(_) => ("HostMemoryError", vec![]),
        Error::Invariant(v) => (
            "InvariantViolation",
            vec![PyList::new(py, v).unwrap().into_any().unbind()],
        ),
        Error::WorkerFailed { .. } => ("WorkerFailed", vec![]),
        Error::Deadlock(_) => ("DeadlockDetected", vec![]),
        Error::UninitAccess(_) => ("UninitialisedAccess", vec![]),
        Error::Interrupted(m) => return PyKeyboardInterrupt::new_err(m.clone()),
    };
    let build = || -> PyResult<PyErr> {
        let cls = py.import("pgdefer.errors")?.getattr(class)?;
        let obj = if let Error::Invariant(_) = e {
            cls.call1((args[0].clone_ref(py),))?
        } else if let Error::WorkerFailed { node, message } = &e {
            cls.call1((message.clone(), *node))?
        } else {
            cls.call1((e.to_string(),))?
        };
        Ok(PyErr::from_value(obj))
    };
    build().unwrap_or_else(|err| err)
}

/// Run `f` without the GIL; a Rust panic becomes a RuntimeError instead of a PanicException.
fn run<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, Error> + Send) -> PyResult<T> {
    match py.detach(|| catch_unwind(AssertUnwindSafe(f))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(to_py(py, e)),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(PyRuntimeError::new_err(format!(
                "pgdefer internal error (please report): {what}"
            )))
        }
    }
}

/// A migratetype by name (`MIGRATETYPES`, case-insensitive); an unknown one is InvalidArgument.
fn migrate_type(py: Python<'_>, name: Option<&str>) -> PyResult<Option<MigrateType>> {
    name.map(|n| {
        MigrateType::parse(n).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "unknown migratetype {n:?}: expected one of {MIGRATETYPE_NAMES:?}"
            ))
        })
    })
    .transpose()
    .map_err(|e| to_py(py, e))
}

fn zone_type(py: Python<'_>, name: Option<&str>) -> PyResult<Option<ZoneType>> {
    name.map(ZoneType::parse)
        .transpose()
        .map_err(|e| to_py(py, e))
}

/// The memory layout `Machine` and `deferral` take, as Python passes it: one tuple `(page_size,
/// section_size, pageblock_order, max_order, memory [(start, end, nid)], reserved [(start, end)],
/// zone_limits (DMA, DMA32, Normal))` (`pgdefer.machine._layout`).
#[derive(FromPyObject)]
#[allow(clippy::type_complexity)]
struct LayoutArgs(
    u64,
    u64,
    u32,
    u32,
    Vec<(u64, u64, u32)>,
    Vec<(u64, u64)>,
    (Option<u64>, Option<u64>, Option<u64>),
);

impl LayoutArgs {
    fn convert(&self) -> Result<(Geometry, Vec<Region>, Vec<Region>, ZoneLimits), Error> {
        let LayoutArgs(
            page_size,
            section_size,
            pageblock_order,
            max_order,
            memory,
            reserved,
            limits,
        ) = self;
        let geometry = Geometry::new(*page_size, *section_size, *pageblock_order, *max_order)?;
        let memory = memory
            .iter()
            .map(|&(start, end, nid)| Region { start, end, nid })
            .collect();
        let reserved = reserved
            .iter()
            .map(|&(start, end)| Region { start, end, nid: 0 })
            .collect();
        let &(dma, dma32, normal) = limits;
        Ok((
            geometry,
            memory,
            reserved,
            ZoneLimits { dma, dma32, normal },
        ))
    }
}

/// Per node (nid, first_deferred_pfn, deferred pages) that memmap_init would leave under `policy`,
/// from the layout alone: the machine's own defer rule, without a page array.
#[pyfunction]
fn deferral(
    py: Python<'_>,
    layout: LayoutArgs,
    policy: &str,
) -> PyResult<Vec<(u32, Option<u64>, u64)>> {
    run(py, || {
        let (geometry, memory, reserved, zone_limits) = layout.convert()?;
        let policy = Policy::parse(policy)?;
        let layout = Layout::new(geometry, &memory, &reserved, zone_limits)?;
        Ok(crate::deferred::deferral(&layout, policy)
            .into_iter()
            .map(|n| (n.nid, n.first_deferred_pfn, n.deferred_pages))
            .collect())
    })
}

/// The policy called `name`, checked by the core's policy table (InvalidArgument naming every policy and
/// the closest one): the one check of a policy name, which `pgdefer.generations.check_policy` asks.
#[pyfunction]
fn check_policy(py: Python<'_>, name: &str) -> PyResult<&'static str> {
    Policy::parse(name).map(Policy::name).map_err(|e| to_py(py, e))
}

/// A window `[start, end)` of the `len` struct pages, or InvalidArgument naming the `call`.
fn check_window(py: Python<'_>, call: &str, start: usize, end: usize, len: usize) -> PyResult<()> {
    if start > end || end > len {
        return Err(to_py(
            py,
            Error::InvalidArgument(format!(
                "{call}: needs start <= end <= {len} (the struct pages)"
            )),
        ));
    }
    Ok(())
}

/// `_core.POLICY_FACTS`: policy name -> {fact: value}, from `Policy::facts`; `early_limit` is a
/// callable `(geometry, node_spanned) -> pages or None` (geometry: anything with the four sizes).
fn policy_facts(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let table = PyDict::new(py);
    for p in Policy::ALL {
        let d = PyDict::new(py);
        for (name, value) in p.facts() {
            match value {
                FactValue::Bool(b) => d.set_item(name, b)?,
                FactValue::Name(n) => d.set_item(name, n)?,
                FactValue::EarlyLimit(policy) => {
                    let f = PyCFunction::new_closure(
                        py,
                        Some(c"early_limit"),
                        Some(c"early_limit(geometry, node_spanned): LIMIT of the defer rule in pages, None: never defers (v4.13 without its reserved-memory compensation, which needs the layout: see pgdefer.machine.deferral)"),
                        move |args: &Bound<'_, PyTuple>, _kw: Option<&Bound<'_, PyDict>>| -> PyResult<Option<u64>> {
                            if args.len() != 2 {
                                return Err(PyTypeError::new_err(format!(
                                    "early_limit(geometry, node_spanned) takes 2 arguments, got {}",
                                    args.len()
                                )));
                            }
                            let (geom, spanned): (Bound<'_, PyAny>, u64) = args.extract()?;
                            let g = Geometry::new(
                                geom.getattr("page_size")?.extract()?,
                                geom.getattr("section_size")?.extract()?,
                                geom.getattr("pageblock_order")?.extract()?,
                                geom.getattr("max_order")?.extract()?,
                            )
                            .map_err(|e| to_py(args.py(), e))?;
                            Ok(policy.early_limit(&g, 0, spanned, &[], false))
                        },
                    )?;
                    d.set_item(name, f)?
                }
            }
        }
        table.set_item(p.name(), d)?;
    }
    Ok(table)
}

/// A workload stream from Python: (cpu, count, orders, node, zone, free_percent).
type StreamTuple = (u32, u64, Vec<u32>, Option<u32>, Option<String>, u32);

/// Per host thread, one slot per operation running on it (nested: a callback's own calls), innermost
/// last: the first exception a point callback raised for that operation.
type CallbackErrors = Arc<Mutex<HashMap<u64, Vec<Option<PyErr>>>>>;

/// One simulated machine: the core behind `pgdefer.Machine`, which validates arguments before they
/// reach it (use that front; the types are in `_core.pyi`).
#[pyclass(frozen, name = "Machine", module = "pgdefer._core")]
struct PyMachine {
    inner: Machine,
    /// Exceptions of point callbacks, owned by the operation that reached the point.
    callback_errors: CallbackErrors,
    /// Bumped when an operation that may change the page array starts and when it ends, so that
    /// Python can cache decoded page views (`page_version`).
    version: AtomicU64,
    /// Operations in flight (a view read meanwhile is not cached).
    in_flight: AtomicU64,
}

impl PyMachine {
    /// `run` for a call that may change the page array: `page_version` moves before and after it and
    /// reads None meanwhile.
    fn run_changing<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce() -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.version.fetch_add(1, Ordering::SeqCst);
        let r = run(py, f);
        self.version.fetch_add(1, Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// `run` as an operation of the calling thread: (its result, the exception a point callback raised
    /// for it). A callback belongs to the innermost operation on the thread that reached the point, or,
    /// on a thread the machine started (a pass, padata helper or stream), to the operation that started it.
    fn op_parts<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce() -> Result<T, Error> + Send,
    ) -> (PyResult<T>, Option<PyErr>) {
        let me = thread_token();
        self.callback_errors
            .lock()
            .unwrap()
            .entry(me)
            .or_default()
            .push(None);
        let r = self.run_changing(py, f);
        let mut all = self.callback_errors.lock().unwrap();
        let slots = all.get_mut(&me).expect("this operation's slot");
        let err = slots.pop().flatten();
        if slots.is_empty() {
            all.remove(&me);
        }
        (r, err)
    }

    /// `op_parts` for an operation whose effect stands when a callback raised: the operation completes,
    /// then the callback's exception is raised.
    fn op<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce() -> Result<T, Error> + Send,
    ) -> PyResult<T> {
        match self.op_parts(py, f) {
            (_, Some(e)) => Err(e),
            (r, None) => r,
        }
    }
}

impl PyMachine {
    /// Run a long operation (`f`) so that Ctrl-C stops it: on Python's main thread, the core's stop
    /// polls ask Python for pending signals (`Python::check_signals`) now and then; a signal handler's
    /// exception (KeyboardInterrupt) stops every loop of the operation at its next chunk and is raised
    /// here, with the core's note on what it left behind. Elsewhere (no signals there) `f` just runs.
    fn interruptible<T>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(Python<'_>) -> PyResult<T>,
    ) -> PyResult<T> {
        let threading = py.import("threading")?;
        let main: u64 = threading
            .call_method0("main_thread")?
            .getattr("ident")?
            .extract()?;
        let me: u64 = threading.call_method0("get_ident")?.extract()?;
        if main != me {
            return f(py);
        }
        let caller = std::thread::current().id();
        let pending: Arc<Mutex<Option<PyErr>>> = Arc::new(Mutex::new(None));
        let slot = pending.clone();
        let hook: crate::stop::StopHook = Arc::new(move || {
            std::thread::current().id() == caller
                && Python::attach(|py| match py.check_signals() {
                    Ok(()) => false,
                    Err(e) => {
                        *slot.lock().unwrap() = Some(e);
                        true
                    }
                })
        });
        let stop = &self.inner.stop;
        let previous = stop.set_hook(Some(hook));
        let r = f(py);
        stop.set_hook(previous);
        let raised = pending.lock().unwrap().take();
        match raised {
            None => r,
            Some(e) => {
                stop.clear();
                if let Err(why) = &r {
                    let note = format!("pgdefer: {}", why.value(py));
                    e.value(py).call_method1("add_note", (note,))?;
                }
                Err(e)
            }
        }
    }
}

/// Give a point callback's exception to the operation it belongs to (see `op_parts`); with none (a
/// callback reached outside any operation), report it as unraisable rather than drop it.
fn keep_callback_error(py: Python<'_>, errors: &CallbackErrors, e: PyErr) {
    let unowned = {
        let mut all = errors.lock().unwrap();
        let me = thread_token();
        let owner = if all.get(&me).is_some_and(|v| !v.is_empty()) {
            me
        } else {
            root_thread()
        };
        match all.get_mut(&owner).and_then(|v| v.last_mut()) {
            Some(slot) => {
                slot.get_or_insert(e);
                None
            }
            None => Some(e),
        }
    };
    if let Some(e) = unowned {
        e.write_unraisable(py, None);
    }
}

/// An allocation queued as a hard interrupt on a CPU (`Machine.raise_irq`).
#[pyclass(frozen, name = "IrqHandle", module = "pgdefer._core")]
struct PyIrq {
    slot: Arc<crate::sync::Mutex<Option<Result<u64, Error>>>>,
    cpu: u32,
}

#[pymethods]
impl PyIrq {
    /// Whether the interrupt has been delivered (its allocation ran).
    #[getter]
    fn done(&self) -> bool {
        self.slot.lock().unwrap().is_some()
    }
    /// The pfn the interrupt's allocation got; raises its error (OutOfMemory, DeadlockDetected...),
    /// or PhaseError if it has not been delivered yet.
    fn result(&self, py: Python<'_>) -> PyResult<u64> {
        match self.slot.lock().unwrap().clone() {
            Some(Ok(pfn)) => Ok(pfn),
            Some(Err(e)) => Err(to_py(py, e)),
            None => Err(to_py(
                py,
                Error::Phase(format!(
                    "the interrupt on CPU {} has not been delivered yet",
                    self.cpu
                )),
            )),
        }
    }
    fn __repr__(&self) -> String {
        match &*self.slot.lock().unwrap() {
            None => format!("<IrqHandle cpu {} pending>", self.cpu),
            Some(Ok(p)) => format!("<IrqHandle cpu {} done: pfn {p:#x}>", self.cpu),
            Some(Err(e)) => format!("<IrqHandle cpu {} failed: {e}>", self.cpu),
        }
    }
}

#[pymethods]
impl PyMachine {
    #[new]
    #[pyo3(signature = (layout, policy, cpus=1, grow_irqsave=true, trust_snapshot=false, keep_key=false, fail_pass=None, panic_pass=None,
                        bytes_as_pages=false, retry_forever=false, node_cpus=Vec::new(), host_threads=None,
                        host_check=true, compact=false, early_prefix=None))]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
    fn new(
        py: Python<'_>,
        layout: LayoutArgs,
        policy: &str,
        cpus: u32,
        grow_irqsave: bool,
        trust_snapshot: bool,
        keep_key: bool,
        fail_pass: Option<(u32, u64)>,
        panic_pass: Option<u32>,
        bytes_as_pages: bool,
        retry_forever: bool,
        node_cpus: Vec<(u32, u32)>,
        host_threads: Option<u32>,
        host_check: bool,
        compact: bool,
        early_prefix: Option<u64>,
    ) -> PyResult<Self> {
        let inner = run(py, || {
            let (geometry, memory, reserved, zone_limits) = layout.convert()?;
            Machine::new(MachineConfig {
                geometry,
                memory,
                reserved,
                zone_limits,
                policy: Policy::parse(policy)?,
                cpus,
                grow_irqsave,
                faults: Faults {
                    trust_snapshot,
                    keep_key,
                    fail_pass,
                    panic_pass,
                    bytes_as_pages,
                    retry_forever,
                },
                node_cpus,
                host_threads,
                host_check,
                compact,
                early_prefix,
            })
        })?;
        Ok(PyMachine {
            inner,
            callback_errors: Arc::new(Mutex::new(HashMap::new())),
            version: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        })
    }

    /// `Memory:` line figures once printed: {"at", "available", "physpages"} (pages), else None.
    fn memory_line<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(l) = self.inner.memory_line() else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("at", l.at)?;
        d.set_item("available", l.available)?;
        d.set_item("physpages", l.physpages)?;
        Ok(Some(d))
    }

    fn boot(&self, py: Python<'_>) -> PyResult<()> {
        self.interruptible(py, |py| self.op(py, || self.inner.boot()))
    }

    /// (stage, pages done, memmap pages) of the long operation running now: stage "boot" or
    /// "page_alloc_init_late" with the struct pages initialised so far, "check" with those checked,
    /// "idle" between operations. Safe to call from another thread while one runs.
    fn progress(&self) -> (&'static str, u64, u64) {
        let (stage, done) = self.inner.stop.progress();
        (stage.name(), done, self.inner.pages.len() as u64)
    }

    #[pyo3(signature = (order, node=None, zone=None, cpu=0, migratetype=None))]
    fn alloc_pages(
        &self,
        py: Python<'_>,
        order: u32,
        node: Option<u32>,
        zone: Option<&str>,
        cpu: u32,
        migratetype: Option<&str>,
    ) -> PyResult<u64> {
        let zt = zone_type(py, zone)?;
        let mt = migrate_type(py, migratetype)?.unwrap_or(MigrateType::Unmovable);
        match self.op_parts(py, || self.inner.alloc_pages_mt(order, node, zt, mt, cpu)) {
            (r, None) => r,
            // A callback raised: roll the allocation back, so that the failing call hands out nothing
            // and no page is lost; if the machine refuses the free, the pfn travels with the exception.
            (Ok(pfn), Some(e)) => {
                if let Err(why) = self.run_changing(py, || self.inner.free_pages(pfn, order, cpu)) {
                    let v = e.value(py);
                    v.setattr("pfn", pfn)?;
                    v.call_method1(
                        "add_note",
                        (format!(
                            "pgdefer: alloc_pages(order={order}) got pfn {pfn:#x} (the exception's .pfn) and \
                             could not roll it back: {why}"
                        ),),
                    )?;
                }
                Err(e)
            }
            (Err(_), Some(e)) => Err(e),
        }
    }

    #[pyo3(signature = (pfn, order, cpu=0))]
    fn free_pages(&self, py: Python<'_>, pfn: u64, order: u32, cpu: u32) -> PyResult<()> {
        self.op(py, || self.inner.free_pages(pfn, order, cpu))
    }

    #[pyo3(signature = (node, zone, order, cpu=0))]
    fn deferred_grow_zone(
        &self,
        py: Python<'_>,
        node: u32,
        zone: &str,
        order: u32,
        cpu: u32,
    ) -> PyResult<bool> {
        let zt = zone_type(py, Some(zone))?.unwrap();
        self.op(py, || self.inner.grow_explicit(node, zt, order, cpu))
    }

    #[pyo3(signature = (threads=true))]
    fn page_alloc_init_late(&self, py: Python<'_>, threads: bool) -> PyResult<()> {
        self.interruptible(py, |py| {
            self.op(py, || self.inner.page_alloc_init_late(threads))
        })
    }

    fn first_deferred_pfn(&self, py: Python<'_>, node: u32) -> PyResult<Option<u64>> {
        self.inner
            .first_deferred_pfn(node)
            .map_err(|e| to_py(py, e))
    }

    #[getter]
    fn deferred_pages_enabled(&self) -> bool {
        self.inner.key.enabled()
    }

    #[getter]
    fn phase(&self) -> &'static str {
        self.inner.phase().name()
    }

    #[getter]
    fn policy(&self) -> &'static str {
        self.inner.policy.name()
    }

    /// One dict per node: nid, start_pfn, end_pfn, spanned, present, deferred_zone.
    fn nodes<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner
            .nodes
            .iter()
            .map(|n| {
                let d = PyDict::new(py);
                d.set_item("node", n.span.nid)?;
                d.set_item("start_pfn", n.span.start_pfn)?;
                d.set_item("end_pfn", n.span.end_pfn)?;
                d.set_item("spanned", n.span.spanned())?;
                d.set_item("present", n.span.present)?;
                d.set_item("deferred_zone", n.span.deferred_zone.name())?;
                d.set_item("first_deferred_pfn", n.fdp.load())?;
                Ok(d)
            })
            .collect()
    }

    /// A dict with the zone's span and counters.
    fn zone<'py>(&self, py: Python<'py>, node: u32, zone: &str) -> PyResult<Bound<'py, PyDict>> {
        let zt = zone_type(py, Some(zone))?.unwrap();
        let m = &self.inner;
        let ni = m.node_index(node).map_err(|e| to_py(py, e))?;
        let zi = m.zone_index(ni, zt).map_err(|e| to_py(py, e))?;
        let span = m.nodes[ni].zones[zi].span;
        let (managed, free, nr_free) = m.zone_counters(ni, zi);
        let d = PyDict::new(py);
        d.set_item("node", node)?;
        d.set_item("name", zt.name())?;
        d.set_item("start_pfn", span.start_pfn)?;
        d.set_item("end_pfn", span.end_pfn)?;
        d.set_item("spanned", span.spanned())?;
        d.set_item("present", span.present)?;
        d.set_item("managed", managed)?;
        d.set_item("free_pages", free)?;
        d.set_item("nr_free", nr_free)?;
        d.set_item("deferred", m.nodes[ni].deferred_zone == zi)?;
        Ok(d)
    }

    #[pyo3(signature = (node, zone, order, migratetype=None))]
    fn free_list(
        &self,
        py: Python<'_>,
        node: u32,
        zone: &str,
        order: u32,
        migratetype: Option<&str>,
    ) -> PyResult<Vec<u64>> {
        let zt = zone_type(py, Some(zone))?.unwrap();
        let mt = migrate_type(py, migratetype)?;
        let m = &self.inner;
        let r = m
            .node_index(node)
            .and_then(|ni| Ok((ni, m.zone_index(ni, zt)?)))
            .and_then(|(ni, zi)| m.free_list(ni, zi, order, mt));
        r.map_err(|e| to_py(py, e))
    }

    fn setup_per_cpu_pageset(&self, py: Python<'_>) -> PyResult<()> {
        self.op(py, || self.inner.setup_per_cpu_pageset())
    }

    fn drain_all_pages(&self, py: Python<'_>) -> PyResult<u64> {
        self.op(py, || Ok(self.inner.drain_all_pages()))
    }

    /// One CPU's per-CPU lists of a zone: count, batch, high, and lists: per order, per type, pfns.
    #[pyo3(signature = (node, zone, cpu=0))]
    fn pcp<'py>(
        &self,
        py: Python<'py>,
        node: u32,
        zone: &str,
        cpu: u32,
    ) -> PyResult<Bound<'py, PyDict>> {
        let zt = zone_type(py, Some(zone))?.unwrap();
        let m = &self.inner;
        let v = m
            .node_index(node)
            .and_then(|ni| Ok((ni, m.zone_index(ni, zt)?)))
            .and_then(|(ni, zi)| m.pcp_lists(ni, zi, cpu))
            .map_err(|e| to_py(py, e))?;
        let d = PyDict::new(py);
        d.set_item("count", v.count)?;
        d.set_item("batch", v.batch)?;
        d.set_item("high", v.high)?;
        d.set_item("lists", v.lists)?;
        Ok(d)
    }

    /// `/proc/pagetypeinfo` of one zone: {migratetype name: free blocks per order}.
    fn pagetypeinfo<'py>(
        &self,
        py: Python<'py>,
        node: u32,
        zone: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let zt = zone_type(py, Some(zone))?.unwrap();
        let m = &self.inner;
        let ni = m.node_index(node).map_err(|e| to_py(py, e))?;
        let zi = m.zone_index(ni, zt).map_err(|e| to_py(py, e))?;
        let d = PyDict::new(py);
        for (mt, counts) in m.pagetypeinfo(ni, zi) {
            d.set_item(mt.name(), counts)?;
        }
        Ok(d)
    }

    fn events<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.inner
            .events()
            .into_iter()
            .map(|l| {
                let d = PyDict::new(py);
                d.set_item("kind", l.event.kind())?;
                for (name, value) in l.event.fields() {
                    match value {
                        Value::U64(v) => d.set_item(name, v)?,
                        Value::Pfn(v) => d.set_item(name, v)?,
                        Value::Bool(v) => d.set_item(name, v)?,
                        Value::Str(v) => d.set_item(name, v)?,
                    }
                }
                d.set_item("t_ns", l.t_ns)?;
                d.set_item("cpu", l.cpu)?;
                Ok(d)
            })
            .collect()
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, v) in self.inner.stats.snapshot() {
            d.set_item(k, v)?;
        }
        Ok(d)
    }

    /// The allocation ledger: every block handed to a caller and not freed, as (pfn, order) by pfn.
    fn allocations(&self) -> Vec<(u64, u32)> {
        self.inner.ledger.live()
    }

    fn violations(&self) -> Vec<String> {
        self.inner.violations()
    }

    /// Broken invariants, one message each (empty when all hold).
    fn check(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.interruptible(py, |py| run(py, || Ok(self.inner.check())))
    }

    /// Queue an allocation in hard-interrupt context on `cpu` (delivered at its next interrupt point
    /// with interrupts enabled).
    #[pyo3(signature = (cpu, order, node=None, zone=None))]
    fn raise_irq(
        &self,
        py: Python<'_>,
        cpu: u32,
        order: u32,
        node: Option<u32>,
        zone: Option<&str>,
    ) -> PyResult<PyIrq> {
        let zt = zone_type(py, zone)?;
        let slot = self
            .inner
            .raise_irq(cpu, order, node, zt)
            .map_err(|e| to_py(py, e))?;
        Ok(PyIrq { slot, cpu })
    }

    /// Deliver the interrupts pending on `cpu` now, as an idle CPU would.
    fn deliver_irqs(&self, py: Python<'_>, cpu: u32) -> PyResult<()> {
        self.op(py, || {
            let _on = self.inner.enter_cpu(cpu)?;
            self.inner.irq_point(cpu);
            Ok(())
        })
    }

    /// Call `callback(point, node, cpu)` when the model reaches `point` (for `node`, or any).
    #[pyo3(signature = (point, callback, node=None, once=true))]
    fn at(
        &self,
        py: Python<'_>,
        point: &str,
        callback: Py<PyAny>,
        node: Option<u32>,
        once: bool,
    ) -> PyResult<()> {
        let errors = self.callback_errors.clone();
        let f = Arc::new(move |_m: &Machine, info: &PointInfo| {
            Python::attach(|py| {
                if let Err(e) = callback.call1(py, (info.name, info.node, info.cpu)) {
                    keep_callback_error(py, &errors, e);
                }
            })
        });
        self.inner
            .at_point(point, node, once, f)
            .map_err(|e| to_py(py, e))
    }

    fn clear_points(&self) {
        self.inner.clear_points()
    }

    fn free_initmem(&self, py: Python<'_>) -> PyResult<()> {
        self.op(py, || self.inner.free_initmem())
    }

    #[pyo3(signature = (start, end, cpu=0))]
    fn free_reserved_area(&self, py: Python<'_>, start: u64, end: u64, cpu: u32) -> PyResult<u64> {
        self.op(py, || self.inner.free_reserved_area(start, end, cpu))
    }

    /// (state, zone, node) of a struct page; UninitialisedAccess if it was never initialised.
    #[pyo3(signature = (pfn, cpu=0))]
    fn read_page(&self, py: Python<'_>, pfn: u64, cpu: u32) -> PyResult<(u8, &'static str, u16)> {
        let (st, zt, nid) = self.op(py, || self.inner.read_page(pfn, cpu))?;
        Ok((st as u8, zt.name(), nid))
    }

    /// Per CPU: irqs_disabled, in_atomic, pending interrupts.
    fn cpu_states(&self) -> Vec<(bool, bool, usize)> {
        self.inner
            .cpus
            .iter()
            .map(|c| (c.irqs_disabled(), c.in_atomic(), c.pending()))
            .collect()
    }

    #[getter]
    fn nr_cpus(&self) -> u32 {
        self.inner.nr_cpus
    }

    /// Every simulated CPU: workload CPUs, one pgdatinit CPU per node, then the padata helpers.
    #[getter]
    fn nr_cpu_slots(&self) -> usize {
        self.inner.cpus.len()
    }

    /// {node id: (CPUs, padata max_threads, [helper CPUs of workers 1..])}.
    fn node_workers(&self) -> Vec<(u32, u32, u32, Vec<u32>)> {
        let w = &self.inner.workers;
        (0..self.inner.nodes.len())
            .map(|ni| {
                let helpers = (1..w.max_threads(ni))
                    .map(|k| w.helper_cpu(ni, k))
                    .collect();
                (
                    self.inner.nodes[ni].span.nid,
                    w.node_cpus(ni),
                    w.max_threads(ni),
                    helpers,
                )
            })
            .collect()
    }

    /// {lock name: owning CPU or None} for the grow lock and every node lock.
    fn lock_owners<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item(&self.inner.grow_lock.name, self.inner.grow_lock.owner())?;
        for n in &self.inner.nodes {
            d.set_item(&n.size_lock.name, n.size_lock.owner())?;
        }
        Ok(d)
    }

    /// Run allocation streams on real threads: each stream a tuple (cpu, count, orders, node, zone,
    /// free_percent). Returns per-stream (cpu, allocs, failures, frees, held) and totals.
    #[pyo3(signature = (streams, seed=0, late_init_after=None))]
    fn run_workload<'py>(
        &self,
        py: Python<'py>,
        streams: Vec<StreamTuple>,
        seed: u64,
        late_init_after: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut parsed = Vec::with_capacity(streams.len());
        for (cpu, count, orders, node, zone, free_percent) in streams {
            let zone = zone_type(py, zone.as_deref())?;
            parsed.push(Stream {
                cpu,
                count,
                orders,
                node,
                zone,
                free_percent,
            });
        }
        let r = self.op(py, || {
            self.inner.run_workload(&parsed, seed, late_init_after)
        })?;
        let d = PyDict::new(py);
        let errors: Vec<(u32, String)> = r
            .streams
            .iter()
            .filter_map(|s| s.error.clone().map(|e| (s.cpu, e)))
            .collect();
        d.set_item("errors", errors)?;
        let per: Vec<(u32, u64, u64, u64, usize)> = r
            .streams
            .iter()
            .map(|s| (s.cpu, s.allocs, s.failures, s.frees, s.held.len()))
            .collect();
        d.set_item("streams", per)?;
        d.set_item("allocs", r.streams.iter().map(|s| s.allocs).sum::<u64>())?;
        d.set_item(
            "failures",
            r.streams.iter().map(|s| s.failures).sum::<u64>(),
        )?;
        d.set_item("frees", r.streams.iter().map(|s| s.frees).sum::<u64>())?;
        d.set_item("host_ns", r.host_ns)?;
        let late = r.late_init.map(|l| match l {
            Ok(()) => "ok".to_string(),
            Err(e) => e,
        });
        d.set_item("late_init", late)?;
        Ok(d)
    }

    /// A number that changes whenever an operation may have changed the page array; None while one
    /// is running (then nothing read from the array may be cached).
    #[getter]
    fn page_version(&self) -> Option<u64> {
        let v = self.version.load(Ordering::SeqCst);
        (self.in_flight.load(Ordering::SeqCst) == 0).then_some(v)
    }

    /// Pages in each state (`PAGE_STATES`) and initialised by each boot path (`INIT_BY`) among the
    /// packed indices `[start, end)`: one pass over the array, no copy (`PageView.counts()`).
    fn page_counts(
        &self,
        py: Python<'_>,
        start: usize,
        end: usize,
    ) -> PyResult<(Vec<u64>, Vec<u64>)> {
        let pa = &self.inner.pages;
        check_window(py, &format!("page_counts({start}, {end})"), start, end, pa.len())?;
        run(py, || {
            let mut states = vec![0u64; crate::page::STATE_NAMES.len()];
            let mut by = vec![0u64; crate::page::INIT_BY_NAMES.len()];
            let last = by.len() - 1;
            for i in start..end {
                states[pa.state(i) as usize] += 1;
                by[usize::from(pa.init_by_of(i)).min(last)] += 1;
            }
            Ok((states, by))
        })
    }

    /// (start_pfn, end_pfn, base index) of each run of present sections.
    fn memmap_chunks(&self) -> Vec<(u64, u64, usize)> {
        self.inner
            .pages
            .chunks
            .iter()
            .map(|c| (c.start_pfn, c.end_pfn, c.base))
            .collect()
    }

    /// Sections of the compact memmap by kind: {"zero", "dense", "init", "free_run"}, and "decoded": the
    /// summaries made dense again so far (None: a dense memmap).
    fn memmap_census<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(c) = &self.inner.pages.compact else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (k, n) in ["zero", "dense", "init", "free_run", "decoded"]
            .iter()
            .zip(c.census())
        {
            d.set_item(k, n)?;
        }
        Ok(Some(d))
    }

    /// Numpy views of the page array: "flags", "node", "order1", "init_by", "pageblock_mt". Zero-copy
    /// for a dense memmap; for a compact one, decoded copies of `[start, end)` (default: all pages),
    /// since its summary sections have no per-page bytes.
    #[pyo3(signature = (name, start=0, end=None))]
    fn raw_view<'py>(
        slf: Bound<'py, Self>,
        name: &str,
        start: usize,
        end: Option<usize>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        let pa = &slf.get().inner.pages;
        if pa.compact.is_some() && name != "pageblock_mt" {
            let end = end.unwrap_or(pa.len());
            check_window(py, &format!("raw_view({name:?}, {start}, {end})"), start, end, pa.len())?;
            return Ok(match name {
                "flags" | "order1" | "init_by" => {
                    let v = py.detach(|| pa.decoded_u8(name, start, end));
                    PyArray1::from_vec(py, v).into_any()
                }
                "node" => {
                    let v = py.detach(|| pa.decoded_node(start, end));
                    PyArray1::from_vec(py, v).into_any()
                }
                _ => return Err(pyo3::exceptions::PyKeyError::new_err(name.to_string())),
            });
        }
        // SAFETY: the atomics have the layout of their integer types; the arrays live as long as the
        // machine, which numpy keeps alive as the views' base object. Readers may see values that a
        // concurrent simulated CPU is changing, as with any racy read of the memmap.
        unsafe {
            let container = slf.clone().into_any();
            Ok(match name {
                "flags" => view_u8(&pa.flags, container),
                "order1" => view_u8(pa.order_raw(), container),
                "init_by" => view_u8(&pa.init_by, container),
                "pageblock_mt" => view_u8(&pa.pageblock_mt, container),
                "node" => {
                    let v =
                        ArrayView1::from_shape_ptr(pa.node.len(), pa.node.as_ptr().cast::<u16>());
                    PyArray1::borrow_from_array(&v, container).into_any()
                }
                _ => return Err(pyo3::exceptions::PyKeyError::new_err(name.to_string())),
            })
        }
    }
}

/// A numpy view of atomic bytes, kept alive by `container`.
///
/// # Safety
/// `a` must live as long as `container` (its owner), as `raw_view` guarantees.
unsafe fn view_u8<'py>(
    a: &[std::sync::atomic::AtomicU8],
    container: Bound<'py, PyAny>,
) -> Bound<'py, PyAny> {
    let v = ArrayView1::from_shape_ptr(a.len(), a.as_ptr().cast::<u8>());
    PyArray1::borrow_from_array(&v, container).into_any()
}

/// `(nworks, chunk)` of `padata_do_multithreaded` for a job of `size` pages with align = min_chunk
/// (`padata::Job::plan`, the formula's one owner); `(0, 0)` for an empty job. Used by the cost model.
#[pyfunction]
fn padata_plan(size: u64, min_chunk: u64, max_threads: u32) -> PyResult<(u32, u64)> {
    let job = crate::padata::Job {
        start: 0,
        size,
        align: min_chunk,
        min_chunk,
        max_threads,
    };
    match job.plan() {
        Ok(plan) => Ok(plan.map_or((0, 0), |p| (p.nworks, p.chunk))),
        Err(e) => Err(PyTypeError::new_err(e.to_string())),
    }
}

/// The Rust core of pgdefer (bindings in src/python.rs, types in `_core.pyi`): the machine, the policy
/// table and the constants the Python layer builds on.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMachine>()?;
    m.add_class::<PyIrq>()?;
    m.add("POINTS", crate::machine::POINTS.to_vec())?;
    m.add("INIT_BY", crate::page::INIT_BY_NAMES.to_vec())?;
    m.add("POLICIES", crate::policy::POLICY_NAMES.to_vec())?;
    m.add("POLICY_FACTS", policy_facts(m.py())?)?;
    m.add("MIGRATETYPES", MIGRATETYPE_NAMES.to_vec())?;
    m.add(
        "EVENT_KINDS",
        PyDict::from_sequence(&PyList::new(m.py(), EVENT_KINDS)?.into_any())?,
    )?;
    m.add_function(wrap_pyfunction!(deferral, m)?)?;
    m.add_function(wrap_pyfunction!(check_policy, m)?)?;
    m.add_function(wrap_pyfunction!(padata_plan, m)?)?;
    m.add("DEFAULT_POLICY", Policy::DEFAULT.name())?;
    let g = Geometry::default();
    m.add(
        "DEFAULT_GEOMETRY",
        (
            g.page_size(),
            g.page_size() << g.section_shift,
            g.pageblock_order,
            g.max_order,
        ),
    )?;
    let limits = ZoneLimits::default();
    let default_limits = PyDict::new(m.py());
    for (zt, limit) in [
        (ZoneType::Dma, limits.dma),
        (ZoneType::Dma32, limits.dma32),
        (ZoneType::Normal, limits.normal),
    ] {
        if let Some(end) = limit {
            default_limits.set_item(zt.name(), end)?;
        }
    }
    m.add("DEFAULT_ZONE_LIMITS", default_limits)?;
    m.add("BYTES_PER_PAGE", crate::page::BYTES_PER_PAGE)?;
    m.add("MAX_LINK_SPAN", crate::page::MAX_LINK_SPAN)?;
    m.add("PAGE_STATES", crate::page::STATE_NAMES.to_vec())?;
    let flags = PyDict::new(m.py());
    flags.set_item("state", crate::page::STATE_BITS)?;
    flags.set_item("zone", crate::page::ZONE_BITS)?;
    flags.set_item("init_count", crate::page::INIT_COUNT_BITS)?;
    m.add("PAGE_FLAGS", flags)?;
    m.add("NO_ORDER", crate::page::NO_ORDER)?;
    m.add("MAX_NUMNODES", crate::memblock::MAX_NUMNODES)?;
    m.add("MAX_CPUS", crate::machine::MAX_CPUS)?;
    m.add("MAX_PHYSMEM_BITS", crate::topology::MAX_PHYSMEM_BITS)?;
    m.add("ORDER_BIAS", crate::page::ORDER_BIAS)?;
    m.add("ALLOCATED_HEAD", crate::page::ALLOCATED_HEAD)?;
    m.add(
        "ZONES",
        crate::topology::ZONE_TYPES
            .iter()
            .map(|z| z.name())
            .collect::<Vec<_>>(),
    )?;
    Ok(())
}
