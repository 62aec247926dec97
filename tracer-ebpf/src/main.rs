//! The tracer's kernel side: one tiny program per tracepoint. Each one filters first through
//! read-only globals, then stamps and emits one fixed-size `Event` into the `EVENTS` ring
//! buffer, on its own or (journey mode with `--batched`) in a per-CPU batch that goes out as one record when
//! its NET_RX run or its reader's syscall ends (`batch`). A failed reserve is counted per
//! CPU in `LOST`; nothing is dropped silently.
//!
//! Most tracepoints have two programs: the classic one reads the formatted record at field
//! offsets from the `OFFSETS` global (filled by user space from the tracefs format files,
//! see `tracer_common::offsets`); its BTF tracepoint (tp_btf) twin, `<name>_btf`, reads the
//! tracepoint's arguments and the kernel's structs at offsets from the `MEMBERS` global
//! (kernel BTF, see `tracer_common::members`), skipping the record's formatting. Both call
//! one shared body; user space attaches one of the two. The names user space looks up
//! (maps, globals, programs) are listed in `tracer_common::abi`.
//!
//! Modules: [`globals`] (set by user space before load), [`maps`], [`filter`] (which events
//! to keep), [`flow`] (the flow filter and the context it holds back), [`fields`]
//! (reading the tracepoint record), [`members`] (reading kernel structs in tp_btf programs),
//! [`emit`] (the ring buffer), [`batch`] (several events in one record), [`headers`] and
//! [`reader`] (kernel structs read through BTF offsets), [`stands`] (whether a task is
//! inside a traced syscall), and [`programs`], one file per domain.
//!
//! Adding a program for tracepoint `cat:name`:
//! 1. `tracer-common/src/event.rs`: append a row to the `event_kinds!` table with the next
//!    value (never renumber) and a doc line saying what each payload field holds.
//! 2. `tracer-common/src/offsets.rs`: append one `slots!` row per field the program reads
//!    (`optional` if a kernel may lack it); user space then finds the offsets itself.
//! 3. `programs/<domain>.rs`: a `#[tracepoint] pub fn name` (the function's name is the
//!    tracepoint's: user space attaches by it), reading fields with
//!    `fields::field(&ctx, Slot::X)` and handing them to an `on_name` body that filters
//!    first (`filter`, `flow`), then emits.
//! 4. Its BTF form: `#[btf_tracepoint(function = "name")] pub fn name_btf`, reading the
//!    arguments (`ctx.arg(n)`, in the order of the kernel's `TP_PROTO`) and members
//!    (`members::read(ptr, Member::X)`; new members in `tracer_common::members`), then the
//!    same body; its row in `EventKind::btf_form`.
//! 5. User space attaches every `EventKind` on its own; `tracer/tests/abi.rs` checks that
//!    the object has a program for each, and that the tp_btf programs are the BTF forms.
#![no_std]
#![no_main]

mod batch;
mod emit;
mod fields;
mod filter;
mod flow;
mod globals;
mod headers;
mod maps;
mod members;
mod programs;
mod reader;
mod stands;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// The programs' license: GPL, which the helpers used here require.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
