//! Flow filters: a tcpdump-style expression (`tcp and dst port 6379`) parsed
//! ([`parse`](FlowFilter::parse)), compiled into the postfix program the kernel evaluates
//! on every packet's 5-tuple (`tracer_common::flow`), and evaluated by the same code on
//! journeys offline.
//!
//! The grammar is pcap-filter's for what a 5-tuple can answer: `tcp`, `udp`, `icmp`,
//! `icmp6`, `ip`, `ip6`, `[src|dst|src or dst|src and dst] host ADDR`, `[dir] net CIDR`,
//! `[dir] port N`, `[dir] portrange A-B`, a protocol before any of those (`udp dst port 53`),
//! `and`/`&&`, `or`/`||`, `not`/`!`, parentheses. Names are not resolved.

mod compile;
mod lex;
mod parse;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use parse::{Dir, Expr, Net};
use tracer_common::flow::{FlowOp, FlowTuple, eval, words};

/// A filter expression that does not parse or does not fit the kernel's program.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct FilterError {
    /// 1-based column (in characters) of the offending token.
    pub column: usize,
    /// What was wrong there.
    pub message: String,
}

impl FilterError {
    fn at(column: usize, message: String) -> Self {
        Self { column, message }
    }
}

/// A parsed and compiled flow filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowFilter {
    text: String,
    expr: Expr,
    ops: Vec<FlowOp>,
}

impl FlowFilter {
    /// Parses and compiles an expression; `Ok(None)` for an empty one (no filter).
    pub fn parse(text: &str) -> Result<Option<Self>, FilterError> {
        let tokens = lex::tokens(text);
        let Some(expr) = parse::parse(&tokens, text.chars().count() + 1)? else {
            return Ok(None);
        };
        let ops = compile::compile(&expr)?;
        Ok(Some(Self {
            text: text.trim().to_owned(),
            expr,
            ops,
        }))
    }

    /// The expression as given.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The parsed expression.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// The compiled program (at most `tracer_common::flow::MAX_FLOW_OPS` operations).
    pub fn ops(&self) -> &[FlowOp] {
        &self.ops
    }

    /// Whether a packet with this 5-tuple is selected: the kernel's own evaluation.
    pub fn matches(&self, tuple: &FlowTuple) -> bool {
        eval(self.ops.as_slice(), tuple)
    }

    /// Whether a packet is selected, from what a journey knows of it: IP protocol and its
    /// addresses and ports (a packet whose addresses are unknown never is).
    pub fn matches_packet(
        &self,
        proto: u8,
        saddr: Option<IpAddr>,
        sport: Option<u16>,
        daddr: Option<IpAddr>,
        dport: Option<u16>,
    ) -> bool {
        let (Some(saddr), Some(daddr)) = (saddr, daddr) else {
            return false;
        };
        let version = if saddr.is_ipv4() { 4 } else { 6 };
        let has_ports = matches!(proto, 6 | 17) && sport.is_some() && dport.is_some();
        self.matches(&FlowTuple {
            version,
            proto,
            has_ports,
            sport: sport.unwrap_or(0),
            dport: dport.unwrap_or(0),
            saddr: words(&Net::host(saddr).addr_bytes()),
            daddr: words(&Net::host(daddr).addr_bytes()),
        })
    }
}

/// A filter given on the command line that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad filter expression {text:?}: {error}")]
pub struct ArgsError {
    /// The expression (printed with control characters escaped).
    pub text: String,
    /// What is wrong with it, and where.
    pub error: FilterError,
}

/// Joins the words of a positional filter (`tracer live tcp and port 80`) into one
/// expression, adding `port N` for each `--port` (the shorthand), and parses it.
pub fn from_args(words: &[String], ports: &[u16]) -> Result<Option<FlowFilter>, ArgsError> {
    let mut text = words.join(" ");
    if !ports.is_empty() {
        let ports = ports
            .iter()
            .map(|port| format!("port {port}"))
            .collect::<Vec<_>>()
            .join(" or ");
        text = if text.trim().is_empty() {
            ports
        } else {
            format!("({text}) and ({ports})")
        };
    }
    FlowFilter::parse(&text).map_err(|error| ArgsError { text, error })
}
