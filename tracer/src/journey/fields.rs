//! The one table of the Journey record's fields (names and values, in record order) that the
//! JSON writer, the CSV columns and the field-name tests read: a new field is one line here.

use super::model::{Addr, Journey, Missing, Stage, StageDurations, Stamps};

/// One field's value, borrowed from the journey.
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    /// A count, number or id; null when absent.
    Unsigned(Option<u64>),
    /// A signed number (a syscall's return value); null when absent.
    Signed(Option<i64>),
    /// Text; null when absent.
    Text(Option<&'a str>),
    Bool(bool),
    /// A kernel address, written `0x...`; null when absent.
    Addr(Option<Addr>),
    /// An IP address, written as text (`127.0.0.1`, `::1`); null when absent.
    Ip(Option<std::net::IpAddr>),
    /// The stamps: an object in JSON, `ts_<stamp>` columns in CSV.
    Stamps(&'a Stamps),
    /// The stage durations: an object in JSON, `<stage>_ns` columns in CSV.
    Stages(&'a StageDurations),
    /// The missing stages: a list of objects in JSON, `stage: reason; ...` in CSV.
    Missing(&'a [Missing]),
}

/// A field of the record: its name and how to read it.
pub struct Field {
    pub name: &'static str,
    pub value: for<'a> fn(&'a Journey) -> Value<'a>,
}

/// Calls the macro `$then!` with every field of the record in record order (the order serde
/// writes), one `"name" => |journey| Value,` each: [`FIELDS`] is built from it, and so is the
/// JSON writer's straight-line code (`sink::jsonl`), which then knows each key and each
/// value's kind at compile time.
macro_rules! journey_fields {
    ($then:ident) => {
        $then! {
            "id" => |j| Value::Unsigned(Some(j.id)),
            "dev" => |j| Value::Text(Some(&j.dev)),
            "irq" => |j| Value::Unsigned(j.irq.map(u64::from)),
            "irq_name" => |j| Value::Text(j.irq_name.as_deref()),
            "cpu_irq" => |j| Value::Unsigned(j.cpu_irq.map(u64::from)),
            "cpu_softirq" => |j| Value::Unsigned(j.cpu_softirq.map(u64::from)),
            "cpu_task" => |j| Value::Unsigned(j.cpu_task.map(u64::from)),
            "cpu_stack" => |j| Value::Unsigned(j.cpu_stack.map(u64::from)),
            "pid" => |j| Value::Unsigned(j.pid.map(u64::from)),
            "tid" => |j| Value::Unsigned(j.tid.map(u64::from)),
            "comm" => |j| Value::Text(j.comm.as_deref()),
            "netns" => |j| Value::Unsigned(j.netns),
            "cgroup" => |j| Value::Unsigned(j.cgroup),
            "cgroup_path" => |j| Value::Text(j.cgroup_path.as_deref()),
            "proto" => |j| Value::Text(Some(&j.proto)),
            "family" => |j| Value::Text(j.family),
            "saddr" => |j| Value::Ip(j.saddr),
            "sport" => |j| Value::Unsigned(j.sport.map(u64::from)),
            "daddr" => |j| Value::Ip(j.daddr),
            "dport" => |j| Value::Unsigned(j.dport.map(u64::from)),
            "len" => |j| Value::Unsigned(Some(u64::from(j.len))),
            "bytes" => |j| Value::Signed(j.bytes),
            "syscall" => |j| Value::Text(j.syscall),
            "napi_batch_pos" => |j| Value::Unsigned(j.napi_batch_pos.map(u64::from)),
            "napi_work" => |j| Value::Unsigned(j.napi_work.map(u64::from)),
            "napi_budget" => |j| Value::Unsigned(j.napi_budget.map(u64::from)),
            "softirq_in_ksoftirqd" => |j| Value::Bool(j.softirq_in_ksoftirqd),
            "gro_merged" => |j| Value::Unsigned(Some(u64::from(j.gro_merged))),
            "read_packets" => |j| Value::Unsigned(Some(u64::from(j.read_packets))),
            "partial_read" => |j| Value::Bool(j.partial_read),
            "skbaddr" => |j| Value::Addr(Some(j.skbaddr)),
            "skaddr" => |j| Value::Addr(j.skaddr),
            "payload" => |j| Value::Unsigned(j.payload.map(u64::from)),
            "tcp_flags" => |j| Value::Text(j.tcp_flags.map(|f| f.as_str())),
            "control" => |j| Value::Bool(j.control),
            "first_read" => |j| Value::Unsigned(j.first_read),
            "reads" => |j| Value::Unsigned(Some(u64::from(j.reads))),
            "woken_tid" => |j| Value::Unsigned(j.woken_tid.map(u64::from)),
            "ts" => |j| Value::Stamps(&j.ts),
            "stages_ns" => |j| Value::Stages(&j.stages_ns),
            "complete" => |j| Value::Bool(j.complete),
            "missing" => |j| Value::Missing(&j.missing),
            "drop_reason" => |j| Value::Text(j.drop_reason.as_deref()),
            "lost_events" => |j| Value::Bool(j.lost_events),
        }
    };
}
pub(crate) use journey_fields;

macro_rules! field_table {
    ($($name:literal => $value:expr,)*) => {
        &[$(Field {
            name: $name,
            value: $value,
        },)*]
    };
}

/// Every field of [`Journey`], in the order of the JSON record (the order serde writes).
pub const FIELDS: &[Field] = journey_fields!(field_table);

/// A stamp of [`Stamps`]: its name and how to read it.
pub struct Stamp {
    pub name: &'static str,
    pub value: fn(&Stamps) -> Option<u64>,
}

macro_rules! stamp {
    ($name:ident) => {
        Stamp {
            name: stringify!($name),
            value: |ts| ts.$name,
        }
    };
}

/// Calls the macro `$then!` with the name of every stamp of [`Stamps`] in the order of the
/// JSON record (their order in [`Stamps`]): [`STAMPS`] is built from it, and so is the JSON
/// writer's `ts` object.
macro_rules! stamp_fields {
    ($then:ident) => {
        $then! {
            irq_entry, irq_exit, softirq_raise, softirq_entry, netif_receive, sk_data_ready,
            waking, wakeup, switch_in, recv_return,
        }
    };
}
pub(crate) use stamp_fields;

macro_rules! stamp_table {
    ($($name:ident,)*) => {
        [$(stamp!($name),)*]
    };
}

/// The stamps in the order of the JSON record (their order in [`Stamps`]; the order they
/// happen in is [`Stamps::in_order`]).
pub const STAMPS: [Stamp; 10] = stamp_fields!(stamp_table);

/// The value of every stage, with the stage, in [`Stage::ALL`] order.
pub fn stages(ns: &StageDurations) -> impl Iterator<Item = (Stage, Option<u64>)> + '_ {
    Stage::ALL.into_iter().map(|stage| (stage, ns.get(stage)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_serialised_field_in_order() {
        let journey = Journey::default();
        let value = serde_json::to_value(&journey).unwrap();
        let keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let names: Vec<&str> = FIELDS.iter().map(|field| field.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "serde_json sorts keys without preserve_order");
        let stamps: Vec<&str> = value["ts"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut names: Vec<&str> = STAMPS.iter().map(|stamp| stamp.name).collect();
        names.sort_unstable();
        assert_eq!(stamps, names);
    }
}
