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

/// A field of the record: its name, its JSON key fragment and how to read it.
pub struct Field {
    pub name: &'static str,
    /// `,"name":`, built at compile time so the JSON writer copies it whole.
    pub json_key: &'static str,
    pub value: for<'a> fn(&'a Journey) -> Value<'a>,
}

macro_rules! field {
    ($name:literal, $value:expr) => {
        Field {
            name: $name,
            json_key: concat!(",\"", $name, "\":"),
            value: $value,
        }
    };
}

/// Every field of [`Journey`], in the order of the JSON record (the order serde writes).
pub const FIELDS: &[Field] = &[
    field!("id", |j| Value::Unsigned(Some(j.id))),
    field!("dev", |j| Value::Text(Some(&j.dev))),
    field!("irq", |j| Value::Unsigned(j.irq.map(u64::from))),
    field!("irq_name", |j| Value::Text(j.irq_name.as_deref())),
    field!("cpu_irq", |j| Value::Unsigned(j.cpu_irq.map(u64::from))),
    field!("cpu_softirq", |j| Value::Unsigned(
        j.cpu_softirq.map(u64::from)
    )),
    field!("cpu_task", |j| Value::Unsigned(j.cpu_task.map(u64::from))),
    field!("cpu_stack", |j| Value::Unsigned(j.cpu_stack.map(u64::from))),
    field!("pid", |j| Value::Unsigned(j.pid.map(u64::from))),
    field!("tid", |j| Value::Unsigned(j.tid.map(u64::from))),
    field!("comm", |j| Value::Text(j.comm.as_deref())),
    field!("netns", |j| Value::Unsigned(j.netns)),
    field!("cgroup", |j| Value::Unsigned(j.cgroup)),
    field!("cgroup_path", |j| Value::Text(j.cgroup_path.as_deref())),
    field!("proto", |j| Value::Text(Some(&j.proto))),
    field!("family", |j| Value::Text(j.family)),
    field!("saddr", |j| Value::Ip(j.saddr)),
    field!("sport", |j| Value::Unsigned(j.sport.map(u64::from))),
    field!("daddr", |j| Value::Ip(j.daddr)),
    field!("dport", |j| Value::Unsigned(j.dport.map(u64::from))),
    field!("len", |j| Value::Unsigned(Some(u64::from(j.len)))),
    field!("bytes", |j| Value::Signed(j.bytes)),
    field!("syscall", |j| Value::Text(j.syscall)),
    field!("napi_batch_pos", |j| Value::Unsigned(
        j.napi_batch_pos.map(u64::from)
    )),
    field!("napi_work", |j| Value::Unsigned(j.napi_work.map(u64::from))),
    field!("napi_budget", |j| Value::Unsigned(
        j.napi_budget.map(u64::from)
    )),
    field!("softirq_in_ksoftirqd", |j| Value::Bool(
        j.softirq_in_ksoftirqd
    )),
    field!("gro_merged", |j| Value::Unsigned(Some(u64::from(
        j.gro_merged
    )))),
    field!("read_packets", |j| Value::Unsigned(Some(u64::from(
        j.read_packets
    )))),
    field!("partial_read", |j| Value::Bool(j.partial_read)),
    field!("skbaddr", |j| Value::Addr(Some(j.skbaddr))),
    field!("skaddr", |j| Value::Addr(j.skaddr)),
    field!("payload", |j| Value::Unsigned(j.payload.map(u64::from))),
    field!("tcp_flags", |j| Value::Text(
        j.tcp_flags.map(|f| f.as_str())
    )),
    field!("control", |j| Value::Bool(j.control)),
    field!("first_read", |j| Value::Unsigned(j.first_read)),
    field!("reads", |j| Value::Unsigned(Some(u64::from(j.reads)))),
    field!("woken_tid", |j| Value::Unsigned(j.woken_tid.map(u64::from))),
    field!("ts", |j| Value::Stamps(&j.ts)),
    field!("stages_ns", |j| Value::Stages(&j.stages_ns)),
    field!("complete", |j| Value::Bool(j.complete)),
    field!("missing", |j| Value::Missing(&j.missing)),
    field!("drop_reason", |j| Value::Text(j.drop_reason.as_deref())),
    field!("lost_events", |j| Value::Bool(j.lost_events)),
];

/// A stamp of [`Stamps`]: its name, its JSON key fragment and how to read it.
pub struct Stamp {
    pub name: &'static str,
    pub json_key: &'static str,
    pub value: fn(&Stamps) -> Option<u64>,
}

macro_rules! stamp {
    ($name:ident) => {
        Stamp {
            name: stringify!($name),
            json_key: concat!(",\"", stringify!($name), "\":"),
            value: |ts| ts.$name,
        }
    };
}

/// The stamps in the order of the JSON record (their order in [`Stamps`]; the order they
/// happen in is [`Stamps::in_order`]).
pub const STAMPS: [Stamp; 10] = [
    stamp!(irq_entry),
    stamp!(irq_exit),
    stamp!(softirq_raise),
    stamp!(softirq_entry),
    stamp!(netif_receive),
    stamp!(sk_data_ready),
    stamp!(waking),
    stamp!(wakeup),
    stamp!(switch_in),
    stamp!(recv_return),
];

/// `,"<stage>":` of every stage, in [`Stage::ALL`] order, for the JSON writer.
pub const STAGE_KEYS: [&str; 8] = [
    ",\"irq\":",
    ",\"softirq_wait\":",
    ",\"poll\":",
    ",\"stack\":",
    ",\"wakeup\":",
    ",\"runqueue\":",
    ",\"syscall\":",
    ",\"total\":",
];

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
        for (stage, key) in Stage::ALL.iter().zip(STAGE_KEYS) {
            assert_eq!(key, format!(",\"{}\":", stage.name()));
        }
    }
}
