//! Compiling an [`Expr`] into the kernel's postfix program (`tracer_common::flow`), with
//! the limits the kernel's fixed loop and one-word bit stack impose checked here.

use tracer_common::flow::{FlowOp, MAX_FLOW_DEPTH, MAX_FLOW_OPS, code, dir, words};

use super::{Dir, Expr, FilterError, Net};

/// The program for `expr`, or an error when it is too long for the kernel.
pub(super) fn compile(expr: &Expr) -> Result<Vec<FlowOp>, FilterError> {
    let mut ops = Vec::new();
    let depth = emit(expr, &mut ops);
    if ops.len() > MAX_FLOW_OPS || depth > MAX_FLOW_DEPTH {
        return Err(FilterError::at(
            1,
            format!(
                "the expression is too long for the kernel: {} operations (at most \
                 {MAX_FLOW_OPS}; each host or port without src/dst counts three)",
                ops.len()
            ),
        ));
    }
    Ok(ops)
}

/// Appends the operations of `expr`; returns the stack depth they need.
fn emit(expr: &Expr, ops: &mut Vec<FlowOp>) -> usize {
    match expr {
        Expr::Proto(proto) => leaf(ops, code::PROTO, dir::SRC, u32::from(*proto), 0, None),
        Expr::Version(version) => leaf(ops, code::VERSION, dir::SRC, u32::from(*version), 0, None),
        Expr::Addr(which, net) => {
            let version = if net.addr.is_ipv4() { 4 } else { 6 };
            ends(ops, *which, |ops, end| {
                leaf(ops, code::ADDR, end, version, 0, Some(net))
            })
        }
        Expr::Port(which, lo, hi) => ends(ops, *which, |ops, end| {
            leaf(ops, code::PORT, end, u32::from(*lo), u32::from(*hi), None)
        }),
        Expr::Not(inner) => {
            let depth = emit(inner, ops);
            ops.push(op(code::NOT));
            depth
        }
        Expr::And(left, right) => binary(ops, left, right, code::AND),
        Expr::Or(left, right) => binary(ops, left, right, code::OR),
    }
}

fn binary(ops: &mut Vec<FlowOp>, left: &Expr, right: &Expr, code: u8) -> usize {
    let left = emit(left, ops);
    let right = emit(right, ops);
    ops.push(op(code));
    left.max(right + 1)
}

/// One test for `Src`/`Dst`, two joined for `Either` (or) and `Both` (and).
fn ends(
    ops: &mut Vec<FlowOp>,
    which: Dir,
    mut test: impl FnMut(&mut Vec<FlowOp>, u8) -> usize,
) -> usize {
    match which {
        Dir::Src => test(ops, dir::SRC),
        Dir::Dst => test(ops, dir::DST),
        Dir::Either | Dir::Both => {
            test(ops, dir::SRC);
            test(ops, dir::DST);
            ops.push(op(if which == Dir::Either {
                code::OR
            } else {
                code::AND
            }));
            2
        }
    }
}

fn leaf(ops: &mut Vec<FlowOp>, code: u8, end: u8, lo: u32, hi: u32, net: Option<&Net>) -> usize {
    let mut leaf = op(code);
    leaf.dir = end;
    leaf.lo = lo;
    leaf.hi = hi;
    if let Some(net) = net {
        leaf.addr = words(&net.addr_bytes());
        leaf.mask = words(&net.mask_bytes());
    }
    ops.push(leaf);
    1
}

fn op(code: u8) -> FlowOp {
    FlowOp {
        code,
        ..FlowOp::ZERO
    }
}
