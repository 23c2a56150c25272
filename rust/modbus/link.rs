//! One link (a TCP endpoint or a serial bus): its request queue and the
//! poll cycles of the devices behind it, in one task over one [`Connection`].
//!
//! Requests on a link are serialised by construction: the task sends one,
//! awaits its answer or its timeout, then the next. Writes arrive on a channel
//! that the task drains before every request, so they jump ahead of polling
//! and never interleave with a read on the wire.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_modbus::{ExceptionCode, Request, Response};

use super::connection::Connection;
use super::diag::{DeviceDiagnostics, DeviceState, RegisterRange};
use super::plan::{Plan, ReadFunction};
use super::schedule::{missed_ticks, next_tick, Backoff};
use super::{
    unix_ms, LinkError, Outcome, Quantity, RequestError, UnitId, UnixMs, Word, WriteRequest,
};
use crate::decode::{Block, Columns, DataType, Decoded, Layout, NIL_INTEGER};

/// Cycles in a row without any answer before a device is offline.
const OFFLINE_AFTER: u32 = 3;
/// Longest wait between two polls of a failing device.
const MAX_POLL_BACKOFF: Duration = Duration::from_secs(30);

/// What the engine shares with readers: latest values, the raw register
/// blocks they were decoded from, and diagnostics.
#[derive(Debug)]
pub(crate) struct Shared {
    pub values: Mutex<Values>,
    pub raw: Mutex<Vec<RawBlock>>,
    pub diag: Mutex<DeviceDiagnostics>,
}

/// One read of the last cycle, as the device answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBlock {
    pub function: ReadFunction,
    pub start: u16,
    pub quantity: Quantity,
    /// When the read was sent (unix ms).
    pub read_at_ms: UnixMs,
    /// The registers (bits as 0/1 for coils and discrete inputs); `None`
    /// when the read got no data.
    pub registers: Option<Vec<Word>>,
}

impl Shared {
    pub fn new(device_id: &str, points: usize) -> Shared {
        Shared {
            values: Mutex::new(Values::unavailable(points)),
            raw: Mutex::new(Vec::new()),
            diag: Mutex::new(DeviceDiagnostics::new(device_id)),
        }
    }

    /// The diagnostics, even if a panicking thread poisoned the lock (they are
    /// plain counters, valid at every step).
    pub fn diag(&self) -> MutexGuard<'_, DeviceDiagnostics> {
        self.diag.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn raw(&self) -> MutexGuard<'_, Vec<RawBlock>> {
        self.raw.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn values(&self) -> MutexGuard<'_, Values> {
        self.values.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A device's latest values, one entry per point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Values {
    pub values: Vec<f64>,
    pub integers: Vec<i64>,
    pub valid: Vec<bool>,
    /// When the read holding the point was sent (unix ms); 0 before the first.
    pub read_at_ms: Vec<UnixMs>,
    /// `(point, text)` of ASCII points that have one (trailing NULs and
    /// spaces removed), in point order; few devices have any.
    pub texts: Vec<(usize, String)>,
}

impl Values {
    /// The columns of points `first..first + count`, if the device has them.
    fn columns(&mut self, first: usize, count: usize) -> Option<Columns<'_>> {
        let range = first..first.checked_add(count)?;
        Some(Columns {
            values: self.values.get_mut(range.clone())?,
            integers: self.integers.get_mut(range.clone())?,
            valid: self.valid.get_mut(range)?,
        })
    }

    /// When the read holding `points` was sent: a fill when they follow each
    /// other, as a read's points do in the usual model.
    fn stamp(&mut self, points: &[usize], sent_ms: UnixMs) {
        let contiguous = points.windows(2).all(|w| w[1] == w[0] + 1);
        let run = points
            .first()
            .and_then(|&first| self.read_at_ms.get_mut(first..first + points.len()));
        match run {
            Some(run) if contiguous => run.fill(sent_ms),
            _ => {
                for &point in points {
                    if let Some(at) = self.read_at_ms.get_mut(point) {
                        *at = sent_ms;
                    }
                }
            }
        }
    }

    fn unavailable(points: usize) -> Values {
        Values {
            values: vec![f64::NAN; points],
            integers: vec![NIL_INTEGER; points],
            valid: vec![false; points],
            read_at_ms: vec![0; points],
            texts: Vec::new(),
        }
    }
}

/// A write on its way to the link task, with where to answer.
#[derive(Debug)]
pub(crate) struct WriteJob {
    pub unit: UnitId,
    pub timeout: Duration,
    pub request: WriteRequest,
    pub shared: Arc<Shared>,
    pub reply: oneshot::Sender<Outcome<()>>,
}

/// Run a write on the link's connection and answer its caller.
async fn run_write(connection: &mut Connection, job: WriteJob) {
    let (request, context) = match &job.request {
        WriteRequest::SingleCoil(address, value) => (
            Request::WriteSingleCoil(*address, *value),
            format!("write 5@{address}"),
        ),
        WriteRequest::SingleRegister(address, value) => (
            Request::WriteSingleRegister(*address, *value),
            format!("write 6@{address}"),
        ),
        WriteRequest::MultipleCoils(address, values) => (
            Request::WriteMultipleCoils(*address, Cow::Borrowed(values)),
            format!("write 15@{address}+{}", values.len()),
        ),
        WriteRequest::MultipleRegisters(address, values) => (
            Request::WriteMultipleRegisters(*address, Cow::Borrowed(values)),
            format!("write 16@{address}+{}", values.len()),
        ),
    };
    // A command is tried now, even while reconnection is backing off.
    connection.retry_now();
    let outcome = connection.call(job.unit, request, job.timeout).await;
    let rtt = RequestError::from_outcome(outcome.clone().map(|answer| answer.map(|(_, rtt)| rtt)));
    job.shared
        .diag()
        .count(rtt.as_ref().copied(), || context, unix_ms());
    // The caller may have given up waiting; the write happened regardless.
    let _ = job.reply.send(outcome.map(|answer| answer.map(|_| ())));
}

/// Registers (or bits as 0/1) of a read's answer, checked against the request.
fn answer_words(response: Response, quantity: Quantity) -> Result<Vec<Word>, LinkError> {
    let expected = usize::from(quantity);
    let words: Vec<Word> = match response {
        Response::ReadCoils(bits) | Response::ReadDiscreteInputs(bits)
            if bits.len() >= expected =>
        {
            bits[..expected].iter().map(|&b| Word::from(b)).collect()
        }
        Response::ReadHoldingRegisters(words) | Response::ReadInputRegisters(words)
            if words.len() == expected =>
        {
            words
        }
        other => {
            return Err(LinkError::Protocol(format!(
                "answer does not fit a read of {quantity}: {other:?}"
            )))
        }
    };
    Ok(words)
}

fn read_request(function: ReadFunction, start: u16, quantity: Quantity) -> Request<'static> {
    match function {
        ReadFunction::Coils => Request::ReadCoils(start, quantity),
        ReadFunction::DiscreteInputs => Request::ReadDiscreteInputs(start, quantity),
        ReadFunction::HoldingRegisters => Request::ReadHoldingRegisters(start, quantity),
        ReadFunction::InputRegisters => Request::ReadInputRegisters(start, quantity),
    }
}

/// The register fields of one function code, decoded together.
#[derive(Debug)]
pub(crate) struct LayoutGroup {
    pub function: ReadFunction,
    pub layout: Layout,
    /// Device point index of each layout field.
    pub points: Vec<usize>,
    /// The first of `points` when they follow each other (the usual model:
    /// its register measurements in order), so the layout decodes straight
    /// into the device's values.
    pub first: Option<usize>,
    /// Whether it has ASCII fields, decoded to text as well.
    pub has_text: bool,
}

impl LayoutGroup {
    pub fn new(function: ReadFunction, layout: Layout, points: Vec<usize>) -> LayoutGroup {
        let has_text = layout
            .fields()
            .iter()
            .any(|f| f.data_type == DataType::Ascii);
        let first = match points.first() {
            Some(&first) if points.windows(2).all(|w| w[1] == w[0] + 1) => Some(first),
            _ => None,
        };
        LayoutGroup {
            function,
            layout,
            points,
            first,
            has_text,
        }
    }
}

/// What devices of one model share: their plan as first made, their
/// compiled decoders and where each point sits. A hundred meters of one model
/// hold one copy.
#[derive(Debug)]
pub(crate) struct Template {
    pub plan: Arc<Plan>,
    pub groups: Vec<LayoutGroup>,
    pub point_addresses: Vec<u16>,
}

/// A device as its link task polls it.
#[derive(Debug)]
pub(crate) struct DeviceRunner {
    pub shared: Arc<Shared>,
    pub unit: UnitId,
    pub period_ms: i64,
    pub offset_ms: i64,
    pub timeout: Duration,
    pub retries: u8,
    /// The device's own plan: the template's, until a read is split after
    /// exception 0x02 (then a copy of its own).
    pub plan: Arc<Plan>,
    pub template: Arc<Template>,
    /// The wall-clock tick of the next cycle, and the same instant on the
    /// monotonic clock (what the task sleeps until: a wall-clock step while
    /// waiting neither stalls polling nor counts as overruns).
    pub next_due: UnixMs,
    due_at: Instant,
    state: DeviceState,
    silent_cycles: u32,
    failing_cycles: u32,
    poll_backoff: Backoff,
    /// Per read of the plan: its answer this cycle, and for identification
    /// reads the answer of this session (handed to readers as a copy).
    answers: Vec<Option<Vec<Word>>>,
    /// Per read: when it was sent; for a kept identification answer, the
    /// last cycle the device answered on the same session.
    sent_ms: Vec<UnixMs>,
    /// Per read: the device said it does not have it (0x02 once the read is
    /// as narrow as it goes, or 0x01), and is not asked again this session.
    lacking: Vec<bool>,
    lacking_changed: bool,
    /// The connection whose identification and missing registers are known;
    /// `None` before the first cycle and after the device went offline.
    session: Option<u64>,
    /// The previous cycle's raw blocks, taken back from [`Shared`] to be reused.
    spare_raw: Vec<RawBlock>,
    scratch: Decoded,
}

impl DeviceRunner {
    pub fn new(
        shared: Arc<Shared>,
        unit: UnitId,
        period: Duration,
        timeout: Duration,
        retries: u8,
        template: Arc<Template>,
    ) -> DeviceRunner {
        let period_ms = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
        let reads = template.plan.reads().len();
        DeviceRunner {
            shared,
            unit,
            period_ms,
            offset_ms: 0,
            timeout,
            retries,
            plan: Arc::clone(&template.plan),
            template,
            next_due: 0,
            due_at: Instant::now(),
            state: DeviceState::Unknown,
            silent_cycles: 0,
            failing_cycles: 0,
            poll_backoff: Backoff::new(period, MAX_POLL_BACKOFF.max(period)),
            answers: vec![None; reads],
            sent_ms: vec![0; reads],
            lacking: vec![false; reads],
            lacking_changed: false,
            session: None,
            spare_raw: Vec::new(),
            scratch: Decoded::default(),
        }
    }

    /// A new connection, or the device back from offline: its identification
    /// and what it said it lacks are asked for again.
    fn begin_session(&mut self, session: u64) {
        self.session = Some(session);
        for (answer, read) in self.answers.iter_mut().zip(self.plan.reads()) {
            if read.identification {
                *answer = None;
            }
        }
        if self.lacking.contains(&true) {
            self.lacking.fill(false);
            self.lacking_changed = true;
        }
    }

    /// One poll cycle: every read of the plan that is due, then decode and
    /// publish. Identification is read once per session, and what the device
    /// lacks is not asked for again within it.
    async fn cycle(&mut self, connection: &mut Connection, writes: &mut mpsc::Receiver<WriteJob>) {
        let due = self.next_due;
        let started = Instant::now();
        let started_ms = unix_ms();
        let session = connection.next_session();
        if self.session != Some(session) {
            self.begin_session(session);
        }
        // A device that is failing gets one try per read, and its cycle stops
        // at the first read it does not answer: on a shared bus it costs at
        // most one timeout.
        let failing = matches!(self.state, DeviceState::Degraded | DeviceState::Offline);
        let retries = if failing { 0 } else { self.retries };
        let (mut answered, mut failed, mut silent) = (false, false, false);
        for (sent_ms, read) in self.sent_ms.iter_mut().zip(self.plan.reads()) {
            if !read.identification {
                *sent_ms = started_ms;
            }
        }
        let mut index = 0;
        while index < self.plan.reads().len() {
            while let Ok(job) = writes.try_recv() {
                run_write(connection, job).await;
            }
            let read = &self.plan.reads()[index];
            let known = read.identification && self.answers[index].is_some();
            if silent || known || self.lacking[index] {
                index += 1;
                continue;
            }
            let (function, start, quantity) = (read.function, read.start, read.quantity);
            let context = || format!("read {}@{start}+{quantity}", function.code());
            let mut attempt = 0;
            let (outcome, sent_ms) = loop {
                let sent_ms = unix_ms();
                let outcome: Outcome<(Vec<Word>, Duration)> = match connection
                    .call(
                        self.unit,
                        read_request(function, start, quantity),
                        self.timeout,
                    )
                    .await
                {
                    Ok(Ok((response, rtt))) => {
                        answer_words(response, quantity).map(|words| Ok((words, rtt)))
                    }
                    Ok(Err(code)) => Ok(Err(code)),
                    Err(link) => Err(link),
                };
                let reported = match &outcome {
                    Ok(Ok((_, rtt))) => Ok(*rtt),
                    Ok(Err(code)) => Err(RequestError::Exception(*code)),
                    Err(link) => Err(RequestError::Link(link.clone())),
                };
                self.shared
                    .diag()
                    .count(reported.as_ref().copied(), context, unix_ms());
                match outcome {
                    // Only a device that could not be heard is asked again.
                    Err(_) if attempt < retries => attempt += 1,
                    outcome => break (outcome, sent_ms),
                }
            };
            self.sent_ms[index] = sent_ms;
            match outcome {
                Ok(Ok((words, _))) => {
                    self.answers[index] = Some(words);
                    answered = true;
                    index += 1;
                }
                Ok(Err(ExceptionCode::IllegalDataAddress))
                    if Arc::make_mut(&mut self.plan).split(index) =>
                {
                    // Read both halves now, and from now on.
                    answered = true;
                    self.answers.insert(index + 1, None);
                    self.sent_ms.insert(index + 1, sent_ms);
                    self.lacking.insert(index + 1, false);
                }
                Ok(Err(code)) => {
                    answered = true;
                    // Points the device does not have are not available, and
                    // not asked for again on this connection; any other
                    // exception is the device failing.
                    if matches!(
                        code,
                        ExceptionCode::IllegalDataAddress | ExceptionCode::IllegalFunction
                    ) {
                        self.lacking[index] = true;
                        self.lacking_changed = true;
                    } else {
                        failed = true;
                    }
                    index += 1;
                }
                Err(_) => {
                    failed = true;
                    silent = true;
                    index += 1;
                }
            }
        }
        if answered {
            // The identification kept from earlier on this session holds as
            // long as the device answers on it.
            for ((sent_ms, read), answer) in self
                .sent_ms
                .iter_mut()
                .zip(self.plan.reads())
                .zip(&self.answers)
            {
                if read.identification && answer.is_some() && *sent_ms < started_ms {
                    *sent_ms = started_ms;
                }
            }
        }
        // The cycle's duration is its reads, back to back: what the link was
        // busy with (decoding is the engine's time, not the device's).
        let took = started.elapsed();
        self.publish();
        self.conclude(due, took, answered, failed);
    }

    /// Decode this cycle's answers into the device's values and share them.
    fn publish(&mut self) {
        let reads = self.plan.reads();
        let mut texts_found = Vec::new();
        // Decoded straight into what readers see: the lock is held for the
        // few microseconds of the decode, and there is one copy of the values.
        let shared = Arc::clone(&self.shared);
        let mut out = shared.values();
        for group in &self.template.groups {
            let blocks: Vec<Block<'_>> = reads
                .iter()
                .zip(&self.answers)
                .filter(|(read, _)| read.function == group.function)
                .filter_map(|(read, answer)| {
                    answer.as_deref().map(|registers| Block {
                        start: read.start,
                        registers,
                    })
                })
                .collect();
            // Blocks come from reads of the plan: they always fit the layout.
            // Should decoding fail anyway, the fields are not available.
            match group
                .first
                .and_then(|first| out.columns(first, group.points.len()))
            {
                Some(mut columns) => {
                    if group
                        .layout
                        .decode_partial_into(&blocks, columns.reborrow())
                        .is_err()
                    {
                        columns.values.fill(f64::NAN);
                        columns.integers.fill(NIL_INTEGER);
                        columns.valid.fill(false);
                    }
                }
                None => {
                    let scratch = &mut self.scratch;
                    if group.layout.decode_partial(&blocks, scratch).is_err() {
                        scratch.values.fill(f64::NAN);
                        scratch.integers.fill(NIL_INTEGER);
                        scratch.valid.fill(false);
                    }
                    let decoded = scratch
                        .values
                        .iter()
                        .zip(&scratch.integers)
                        .zip(&scratch.valid);
                    for (&point, ((&value, &integer), &valid)) in group.points.iter().zip(decoded) {
                        if point < out.values.len() {
                            out.values[point] = value;
                            out.integers[point] = integer;
                            out.valid[point] = valid;
                        }
                    }
                }
            }
            if group.has_text {
                let texts = group.layout.decode_text(&blocks).unwrap_or_default();
                texts_found.extend(
                    texts
                        .into_iter()
                        .zip(&group.points)
                        .filter_map(|(text, &point)| Some((point, text?))),
                );
            }
        }
        for ((read, answer), &sent_ms) in reads.iter().zip(&self.answers).zip(&self.sent_ms) {
            if !read.function.reads_bits() {
                out.stamp(&read.points, sent_ms);
                continue;
            }
            for &point in &read.points {
                let address = self.template.point_addresses[point];
                let offset = usize::from(address.wrapping_sub(read.start));
                out.read_at_ms[point] = sent_ms;
                match answer.as_ref().and_then(|words| words.get(offset)) {
                    Some(&bit) => {
                        out.values[point] = f64::from(bit);
                        out.integers[point] = i64::from(bit);
                        out.valid[point] = true;
                    }
                    None => {
                        out.values[point] = f64::NAN;
                        out.integers[point] = NIL_INTEGER;
                        out.valid[point] = false;
                    }
                }
            }
        }
        texts_found.sort_unstable();
        out.texts = texts_found;
        drop(out);
        // Hand the answers over as they are (moved, not copied), but for
        // the identification kept for the next cycles.
        let mut raw = std::mem::take(&mut self.spare_raw);
        raw.clear();
        raw.extend(
            reads
                .iter()
                .zip(self.answers.iter_mut())
                .zip(&self.sent_ms)
                .map(|((read, answer), &read_at_ms)| RawBlock {
                    function: read.function,
                    start: read.start,
                    quantity: read.quantity,
                    read_at_ms,
                    registers: if read.identification {
                        answer.clone()
                    } else {
                        answer.take()
                    },
                }),
        );
        std::mem::swap(&mut *self.shared.raw(), &mut raw);
        self.spare_raw = raw;
    }

    /// Schedule the next cycle on the first tick after `after_ms` (unix ms).
    fn schedule(&mut self, after_ms: UnixMs) {
        let now = unix_ms();
        self.next_due = next_tick(after_ms.max(now), self.period_ms, self.offset_ms);
        let wait = u64::try_from(self.next_due - now).unwrap_or(0);
        self.due_at = Instant::now() + Duration::from_millis(wait);
    }

    /// Update the device's state and schedule its next cycle.
    fn conclude(&mut self, due: UnixMs, took: Duration, answered: bool, failed: bool) {
        let late = Instant::now().saturating_duration_since(self.due_at);
        if failed {
            self.failing_cycles += 1;
            self.silent_cycles = if answered { 0 } else { self.silent_cycles + 1 };
            self.state = if self.silent_cycles >= OFFLINE_AFTER {
                // When it is back it may be another device, or reconfigured.
                self.session = None;
                DeviceState::Offline
            } else {
                DeviceState::Degraded
            };
        } else {
            self.failing_cycles = 0;
            self.silent_cycles = 0;
            self.poll_backoff.reset();
            self.state = DeviceState::Ok;
        }
        let overruns = missed_ticks(late, self.period_ms);
        let mut after = unix_ms();
        if self.failing_cycles >= 2 {
            // Keep failing devices from costing their timeout every cycle.
            let delay =
                i64::try_from(self.poll_backoff.next_delay().as_millis()).unwrap_or(i64::MAX);
            after = after.saturating_add(delay - 1);
        }
        self.schedule(after);
        let mut diag = self.shared.diag();
        diag.state = self.state;
        diag.cycles += 1;
        diag.overruns += overruns;
        diag.reads_per_cycle = self.plan.reads().len();
        diag.last_cycle_ms = Some(due);
        diag.last_cycle_duration = took;
        // Kept while the device is silent: what it lacks is known again once it answers.
        if self.lacking_changed && answered {
            self.lacking_changed = false;
            diag.lacking = self
                .plan
                .reads()
                .iter()
                .zip(&self.lacking)
                .filter(|(_, &lacking)| lacking)
                .map(|(read, _)| RegisterRange {
                    function: read.function,
                    address: read.start,
                    count: read.quantity,
                })
                .collect();
            diag.lacking.sort_unstable();
        }
    }
}

/// The task of one link: poll its devices on schedule, run writes first.
pub(crate) async fn run_link(
    mut connection: Connection,
    mut devices: Vec<DeviceRunner>,
    mut writes: mpsc::Receiver<WriteJob>,
) {
    let now = unix_ms();
    for device in &mut devices {
        device.schedule(now);
    }
    loop {
        let Some((index, due_at)) = devices
            .iter()
            .enumerate()
            .map(|(index, device)| (index, device.due_at))
            .min_by_key(|&(_, due_at)| due_at)
        else {
            return;
        };
        tokio::select! {
            biased;
            job = writes.recv() => match job {
                Some(job) => run_write(&mut connection, job).await,
                None => return,
            },
            () = tokio::time::sleep_until(due_at) => {
                devices[index].cycle(&mut connection, &mut writes).await;
            }
        }
        connection.rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked_against_the_request() {
        let words = answer_words(Response::ReadHoldingRegisters(vec![1, 2]), 2).unwrap();
        assert_eq!(words, vec![1, 2]);
        let short = answer_words(Response::ReadInputRegisters(vec![1]), 2).unwrap_err();
        assert!(matches!(short, LinkError::Protocol(_)), "{short}");
        // Coils come padded to whole bytes.
        let bits = answer_words(Response::ReadCoils(vec![true, false, true, false]), 3).unwrap();
        assert_eq!(bits, vec![1, 0, 1]);
    }
}
