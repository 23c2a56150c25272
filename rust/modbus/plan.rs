//! Request planning: a device's points → the fewest reads.
//!
//! Pure and synchronous. Points are grouped by function code, sorted by
//! address and coalesced greedily: a point joins the current read when the
//! registers skipped to reach it number at most `max_gap` and the read stays
//! within `max_registers_per_read` (125 registers, 2,000 bits for coils and
//! discrete inputs, the protocol's limits). Reading a few unused registers
//! costs far less than another round trip.
//!
//! A device that does not implement one register of a coalesced block
//! answers the whole read with exception 0x02 (IllegalDataAddress).
//! [`Plan::split`] then bisects that read, and the plan keeps the split for
//! the device's lifetime, so one unsupported register never blanks the block
//! around it; a read that holds a single point and still fails is what really
//! is not available.
//!
//! Identification points (name, model, serial number) are read once per
//! connection, not every poll: they are planned into reads of their own, never
//! joined with the points read every poll.

use std::fmt;

use super::{Address, Quantity};

/// The four read function codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadFunction {
    /// 0x01 Read Coils (bits).
    Coils,
    /// 0x02 Read Discrete Inputs (bits).
    DiscreteInputs,
    /// 0x03 Read Holding Registers.
    HoldingRegisters,
    /// 0x04 Read Input Registers.
    InputRegisters,
}

impl ReadFunction {
    /// The function code on the wire.
    pub fn code(self) -> u8 {
        match self {
            ReadFunction::Coils => 0x01,
            ReadFunction::DiscreteInputs => 0x02,
            ReadFunction::HoldingRegisters => 0x03,
            ReadFunction::InputRegisters => 0x04,
        }
    }

    /// The read function with this code, if it is one.
    pub fn from_code(code: u8) -> Option<ReadFunction> {
        match code {
            0x01 => Some(ReadFunction::Coils),
            0x02 => Some(ReadFunction::DiscreteInputs),
            0x03 => Some(ReadFunction::HoldingRegisters),
            0x04 => Some(ReadFunction::InputRegisters),
            _ => None,
        }
    }

    /// Whether it reads bits (coils, discrete inputs) rather than registers.
    pub fn reads_bits(self) -> bool {
        matches!(self, ReadFunction::Coils | ReadFunction::DiscreteInputs)
    }

    /// The most items one request may read (Modbus application protocol §6).
    pub fn protocol_limit(self) -> Quantity {
        if self.reads_bits() {
            2000
        } else {
            125
        }
    }
}

/// What a point occupies: its function code, first address and extent
/// (registers, or bits for coils and discrete inputs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointSpan {
    pub function: ReadFunction,
    pub address: Address,
    pub quantity: Quantity,
    /// Read once per connection (see [`Read::identification`]).
    pub identification: bool,
}

impl PointSpan {
    fn end(&self) -> u32 {
        u32::from(self.address) + u32::from(self.quantity)
    }
}

/// A device's limits on reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanLimits {
    /// Largest register read the device accepts (1..=125). Bit reads use the
    /// protocol's 2,000.
    pub max_registers_per_read: Quantity,
    /// Unused registers worth reading through to join two points in one read
    /// (for bit reads, 16 times as many bits: a register's worth each).
    pub max_gap: Quantity,
}

impl Default for PlanLimits {
    fn default() -> Self {
        PlanLimits {
            max_registers_per_read: 125,
            max_gap: 16,
        }
    }
}

/// A planning input that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// One read request of a plan and the points it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub function: ReadFunction,
    pub start: Address,
    pub quantity: Quantity,
    /// It holds identification points only: read once per connection.
    pub identification: bool,
    /// Indices of the points (in the slice given to [`Plan::new`]) it holds.
    pub points: Vec<usize>,
}

/// The reads that fetch every point of a device, in function then address order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    reads: Vec<Read>,
    spans: Vec<PointSpan>,
}

impl Plan {
    /// Coalesce `points` into the fewest reads that `limits` allow.
    pub fn new(points: &[PointSpan], limits: PlanLimits) -> Result<Plan, PlanError> {
        if !(1..=125).contains(&limits.max_registers_per_read) {
            return Err(PlanError(format!(
                "max_registers_per_read must be 1..=125, not {}",
                limits.max_registers_per_read
            )));
        }
        for (index, point) in points.iter().enumerate() {
            let limit = max_quantity(point.function, limits);
            if point.quantity == 0 || point.quantity > limit {
                return Err(PlanError(format!(
                    "point {index} (function {}, address {}) spans {} items; one read holds 1..={limit}",
                    point.function.code(),
                    point.address,
                    point.quantity
                )));
            }
            if point.end() > 0x1_0000 {
                return Err(PlanError(format!(
                    "point {index} (function {}, address {}) runs past address 65535",
                    point.function.code(),
                    point.address
                )));
            }
        }
        let mut order: Vec<usize> = (0..points.len()).collect();
        order.sort_by_key(|&i| {
            let p = &points[i];
            (p.function, p.identification, p.address, p.end())
        });

        let mut reads: Vec<Read> = Vec::new();
        for index in order {
            let point = points[index];
            let gap = u32::from(if point.function.reads_bits() {
                limits.max_gap.saturating_mul(16)
            } else {
                limits.max_gap
            });
            let limit = u32::from(max_quantity(point.function, limits));
            let joins = reads.last().is_some_and(|read| {
                let end = u32::from(read.start) + u32::from(read.quantity);
                read.function == point.function
                    && read.identification == point.identification
                    && u32::from(point.address) <= end + gap
                    && point.end().max(end) - u32::from(read.start) <= limit
            });
            match reads.last_mut() {
                Some(read) if joins => {
                    let end = (u32::from(read.start) + u32::from(read.quantity)).max(point.end());
                    read.quantity = (end - u32::from(read.start)) as Quantity;
                    read.points.push(index);
                }
                _ => reads.push(Read {
                    function: point.function,
                    start: point.address,
                    quantity: point.quantity,
                    identification: point.identification,
                    points: vec![index],
                }),
            }
        }
        Ok(Plan {
            reads,
            spans: points.to_vec(),
        })
    }

    /// The reads, in function code then address order.
    pub fn reads(&self) -> &[Read] {
        &self.reads
    }

    /// Bisect read `index` (after exception 0x02) into two tight reads, at the
    /// address change nearest the middle of its points. Returns `false` when
    /// it cannot be split: all its points start at the same address, so the
    /// failure is theirs.
    pub fn split(&mut self, index: usize) -> bool {
        let Some(read) = self.reads.get(index) else {
            return false;
        };
        let points = &read.points;
        let spans = &self.spans;
        let middle = points.len() / 2;
        // Cut where the start address changes, nearest to the middle.
        let cut = (1..points.len())
            .filter(|&k| spans[points[k]].address != spans[points[k - 1]].address)
            .min_by_key(|&k| k.abs_diff(middle));
        let Some(cut) = cut else {
            return false;
        };
        let tight = |members: &[usize]| -> Read {
            let start = members.iter().map(|&p| spans[p].address).min().unwrap_or(0);
            let end = members.iter().map(|&p| spans[p].end()).max().unwrap_or(0);
            Read {
                function: read.function,
                start,
                quantity: (end - u32::from(start)) as Quantity,
                identification: read.identification,
                points: members.to_vec(),
            }
        };
        let (first, second) = (tight(&points[..cut]), tight(&points[cut..]));
        self.reads[index] = first;
        self.reads.insert(index + 1, second);
        true
    }
}

fn max_quantity(function: ReadFunction, limits: PlanLimits) -> Quantity {
    if function.reads_bits() {
        function.protocol_limit()
    } else {
        limits.max_registers_per_read.min(function.protocol_limit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(address: Address, quantity: Quantity) -> PointSpan {
        PointSpan {
            function: ReadFunction::HoldingRegisters,
            address,
            quantity,
            identification: false,
        }
    }

    fn ranges(plan: &Plan) -> Vec<(u8, Address, Quantity)> {
        plan.reads()
            .iter()
            .map(|r| (r.function.code(), r.start, r.quantity))
            .collect()
    }

    const LIMITS: PlanLimits = PlanLimits {
        max_registers_per_read: 125,
        max_gap: 4,
    };

    #[test]
    fn contiguous_points_make_one_read() {
        let points: Vec<_> = (0..10).map(|k| holding(100 + 2 * k, 2)).collect();
        let plan = Plan::new(&points, LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 100, 20)]);
        assert_eq!(plan.reads()[0].points, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn gaps_up_to_max_gap_are_read_through() {
        // 4 unused registers between: joined; 5: a new read.
        let plan = Plan::new(&[holding(0, 2), holding(6, 2), holding(13, 1)], LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 0, 8), (3, 13, 1)]);
    }

    #[test]
    fn reads_never_exceed_125_registers() {
        let points: Vec<_> = (0..100).map(|k| holding(2 * k, 2)).collect();
        let plan = Plan::new(&points, LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 0, 124), (3, 124, 76)]);
        // A point never straddles two reads.
        let total: usize = plan.reads().iter().map(|r| r.points.len()).sum();
        assert_eq!(total, 100);
    }

    #[test]
    fn device_limit_is_honoured() {
        let limits = PlanLimits {
            max_registers_per_read: 10,
            max_gap: 0,
        };
        let points: Vec<_> = (0..8).map(|k| holding(4 * k, 4)).collect();
        let plan = Plan::new(&points, limits).unwrap();
        assert_eq!(
            ranges(&plan),
            vec![(3, 0, 8), (3, 8, 8), (3, 16, 8), (3, 24, 8)]
        );
    }

    #[test]
    fn functions_are_planned_apart_and_unsorted_input_is_fine() {
        let points = [
            PointSpan {
                function: ReadFunction::InputRegisters,
                address: 10,
                quantity: 2,
                identification: false,
            },
            holding(12, 2),
            holding(10, 2),
            PointSpan {
                function: ReadFunction::InputRegisters,
                address: 12,
                quantity: 1,
                identification: false,
            },
        ];
        let plan = Plan::new(&points, LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 10, 4), (4, 10, 3)]);
        assert_eq!(plan.reads()[0].points, vec![2, 1]);
        assert_eq!(plan.reads()[1].points, vec![0, 3]);
    }

    #[test]
    fn overlapping_points_share_registers() {
        // A BITMAP inside a register also read as UINT16, an ASCII over both.
        let plan = Plan::new(&[holding(5, 1), holding(5, 1), holding(4, 6)], LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 4, 6)]);
    }

    #[test]
    fn bit_reads_go_to_2000_bits() {
        let points: Vec<_> = (0..2500)
            .map(|k| PointSpan {
                function: ReadFunction::Coils,
                address: k,
                quantity: 1,
                identification: false,
            })
            .collect();
        let plan = Plan::new(&points, LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(1, 0, 2000), (1, 2000, 500)]);
        // Bit gaps are counted in registers' worth of bits.
        let sparse = [0, 64, 200].map(|address| PointSpan {
            function: ReadFunction::DiscreteInputs,
            address,
            quantity: 1,
            identification: false,
        });
        let plan = Plan::new(&sparse, LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(2, 0, 65), (2, 200, 1)]);
    }

    #[test]
    fn bad_inputs_are_refused_with_the_point_named() {
        let err = Plan::new(&[holding(0, 2), holding(10, 0)], LIMITS).unwrap_err();
        assert!(err.0.contains("point 1"), "{err}");
        let err = Plan::new(&[holding(65535, 2)], LIMITS).unwrap_err();
        assert!(err.0.contains("65535"), "{err}");
        let limits = PlanLimits {
            max_registers_per_read: 126,
            max_gap: 0,
        };
        assert!(Plan::new(&[holding(0, 1)], limits).is_err());
        let limits = PlanLimits {
            max_registers_per_read: 2,
            max_gap: 0,
        };
        assert!(Plan::new(&[holding(0, 4)], limits).is_err());
    }

    #[test]
    fn split_bisects_and_is_remembered() {
        let points: Vec<_> = (0..8).map(|k| holding(2 * k, 2)).collect();
        let mut plan = Plan::new(&points, LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 0, 16)]);
        assert!(plan.split(0));
        assert_eq!(ranges(&plan), vec![(3, 0, 8), (3, 8, 8)]);
        assert!(plan.split(1));
        assert_eq!(ranges(&plan), vec![(3, 0, 8), (3, 8, 4), (3, 12, 4)]);
        assert!(plan.split(2));
        assert!(!plan.split(3), "a single point cannot be split");
        assert_eq!(
            ranges(&plan),
            vec![(3, 0, 8), (3, 8, 4), (3, 12, 2), (3, 14, 2)]
        );
        assert!(!plan.split(99));
        // Every point still belongs to exactly one read.
        let mut all: Vec<usize> = plan.reads().iter().flat_map(|r| r.points.clone()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn split_drops_the_gaps() {
        let mut plan = Plan::new(&[holding(0, 2), holding(4, 2)], LIMITS).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 0, 6)]);
        assert!(plan.split(0));
        assert_eq!(ranges(&plan), vec![(3, 0, 2), (3, 4, 2)]);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn point() -> impl Strategy<Value = PointSpan> {
            (
                1u8..=4,
                0u16..2000,
                prop_oneof![Just(1u16), Just(2), Just(4), 1u16..10],
                proptest::bool::weighted(0.1),
            )
                .prop_map(|(code, address, quantity, identification)| PointSpan {
                    function: ReadFunction::from_code(code).unwrap_or(ReadFunction::Coils),
                    address,
                    quantity: if code <= 2 { 1 } else { quantity },
                    identification,
                })
        }

        fn check(plan: &Plan, points: &[PointSpan], limits: PlanLimits) {
            let mut seen = vec![0; points.len()];
            for read in plan.reads() {
                let limit = max_quantity(read.function, limits);
                assert!(read.quantity >= 1 && read.quantity <= limit, "{read:?}");
                for &p in &read.points {
                    seen[p] += 1;
                    let span = points[p];
                    assert_eq!(span.function, read.function);
                    assert_eq!(span.identification, read.identification);
                    assert!(span.address >= read.start);
                    assert!(span.end() <= u32::from(read.start) + u32::from(read.quantity));
                }
            }
            assert!(
                seen.iter().all(|&n| n == 1),
                "each point in exactly one read"
            );
        }

        proptest! {
            #[test]
            fn every_point_is_read_once_within_the_limits(
                points in proptest::collection::vec(point(), 0..300),
                max_registers_per_read in 10u16..=125,
                max_gap in 0u16..40,
            ) {
                let limits = PlanLimits { max_registers_per_read, max_gap };
                let mut plan = Plan::new(&points, limits).unwrap();
                check(&plan, &points, limits);
                // Coalescing: two consecutive reads of one kind could not be joined.
                for pair in plan.reads().windows(2) {
                    let (a, b) = (&pair[0], &pair[1]);
                    if a.function == b.function && a.identification == b.identification {
                        let a_end = u32::from(a.start) + u32::from(a.quantity);
                        let gap = if a.function.reads_bits() { u32::from(max_gap) * 16 } else { u32::from(max_gap) };
                        let joined = u32::from(b.start) + u32::from(b.quantity) - u32::from(a.start);
                        prop_assert!(
                            u32::from(b.start) > a_end + gap
                                || joined > u32::from(max_quantity(a.function, limits)),
                            "{a:?} and {b:?} should have been one read"
                        );
                    }
                }
                // Splitting every read as far as it goes keeps every point, once.
                let mut index = 0;
                while index < plan.reads().len() {
                    if !plan.split(index) {
                        index += 1;
                    }
                }
                check(&plan, &points, limits);
            }
        }
    }

    #[test]
    fn identification_is_read_apart_from_what_is_polled() {
        let mut name = holding(29, 20);
        name.identification = true;
        let mut serial = holding(51, 2);
        serial.identification = true;
        let points = [holding(20, 2), name, holding(50, 1), serial];
        let limits = PlanLimits::default();
        let plan = Plan::new(&points, limits).unwrap();
        assert_eq!(ranges(&plan), vec![(3, 20, 2), (3, 50, 1), (3, 29, 24)]);
        // Without the flag all four are one read.
        let unflagged = points.map(|p| PointSpan {
            identification: false,
            ..p
        });
        let together = Plan::new(&unflagged, limits).unwrap();
        assert_eq!(ranges(&together), vec![(3, 20, 33)]);
        let flags: Vec<bool> = plan.reads().iter().map(|r| r.identification).collect();
        assert_eq!(flags, vec![false, false, true]);
        let mut plan = plan;
        assert!(plan.split(2));
        assert!(plan.reads()[2..].iter().all(|r| r.identification));
    }

    #[test]
    fn points_at_one_address_are_not_split() {
        let mut plan = Plan::new(&[holding(7, 1), holding(7, 1)], LIMITS).unwrap();
        assert!(!plan.split(0));
        assert_eq!(ranges(&plan), vec![(3, 7, 1)]);
    }
}
