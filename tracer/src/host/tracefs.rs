//! tracefs: where it is, and the `events/<category>/<name>/format` files that give each
//! tracepoint's field offsets on the running kernel.

use std::{
    collections::BTreeMap,
    fs, io,
    path::{Path, PathBuf},
};

use tracer_common::{
    EventKind, SLOT_COUNT, Slot,
    offsets::{ABSENT, FieldType},
};

/// The usual tracefs mount point (kernel 4.1+); older systems use debugfs's `tracing/`.
pub const TRACEFS: &str = "/sys/kernel/tracing";
const DEBUGFS_TRACING: &str = "/sys/kernel/debug/tracing";

/// Errors of this module, each naming the file or tracepoint concerned.
#[derive(Debug, thiserror::Error)]
pub enum TracefsError {
    /// tracefs is neither mounted nor mountable.
    #[error("tracefs is not mounted at {TRACEFS} and mounting it failed: {0}")]
    Mount(io::Error),
    /// tracefs is there but this process may not read it (mode 0700, not root).
    #[error(
        "tracefs at {0} is not readable by this user (permission denied): run as root, or with \
         CAP_DAC_OVERRIDE"
    )]
    NoPermission(String),
    /// A format file could not be read.
    #[error("reading {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// A format file line could not be parsed.
    #[error("{path}: line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
}

/// The tracefs this process reads: where it is, and whether we mounted it (then it is
/// unmounted again when this is dropped, at the end of the process's tracing).
#[derive(Debug)]
pub struct Tracefs {
    /// The root, e.g. `/sys/kernel/tracing`.
    pub root: PathBuf,
    /// We mounted it (it was not mounted before).
    pub mounted_here: bool,
}

impl Drop for Tracefs {
    fn drop(&mut self) {
        if self.mounted_here
            && let Ok(target) = std::ffi::CString::new(TRACEFS)
        {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH lets readers finish.
            unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Returns the tracefs root, mounting tracefs at [`TRACEFS`] with mount(2) (no program is
/// looked up through PATH) if nothing is mounted yet. Tells "not readable" from "not mounted".
pub fn ensure_mounted() -> Result<Tracefs, TracefsError> {
    for root in [TRACEFS, DEBUGFS_TRACING] {
        let events = Path::new(root).join("events");
        match fs::metadata(&events) {
            Ok(meta) if meta.is_dir() => {
                return match fs::read_dir(&events) {
                    Ok(_) => Ok(Tracefs {
                        root: PathBuf::from(root),
                        mounted_here: false,
                    }),
                    Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                        Err(TracefsError::NoPermission(root.to_owned()))
                    }
                    Err(err) => Err(TracefsError::Read {
                        path: events,
                        source: err,
                    }),
                };
            }
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
                return Err(TracefsError::NoPermission(root.to_owned()));
            }
            _ => {}
        }
    }
    let c = |text: &str| std::ffi::CString::new(text).expect("no NUL in constants");
    let (source, target, kind) = (c("nodev"), c(TRACEFS), c("tracefs"));
    // SAFETY: valid NUL-terminated strings; no mount data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            kind.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(TracefsError::Mount(io::Error::last_os_error()));
    }
    let mounted = Tracefs {
        root: PathBuf::from(TRACEFS),
        mounted_here: true,
    };
    if mounted.root.join("events").is_dir() {
        Ok(mounted)
    } else {
        Err(TracefsError::Mount(io::Error::other(
            "mounted, but it has no events/ directory",
        )))
    }
}

/// One `field:` line of a format file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// The C declaration without the name, e.g. `__data_loc char[]` or `pid_t`.
    pub c_type: String,
    /// Field name.
    pub name: String,
    /// Byte offset in the tracepoint record.
    pub offset: u16,
    /// Size in bytes.
    pub size: u16,
}

/// A parsed format file: the fields and the `print fmt:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Format {
    /// Fields in file order, common_* fields included.
    pub fields: Vec<Field>,
    /// The text after `print fmt: `.
    pub print_fmt: String,
}

impl Format {
    /// Parses the text of a format file; `path` only labels errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, TracefsError> {
        let mut format = Format::default();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix("print fmt: ") {
                format.print_fmt = rest.to_owned();
            } else if line.starts_with("field:") {
                let field = parse_field(line).map_err(|reason| TracefsError::Parse {
                    path: path.to_owned(),
                    line: index + 1,
                    reason,
                })?;
                format.fields.push(field);
            }
        }
        Ok(format)
    }

    /// The field with this name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }

    /// The `{ value, "NAME" }` table of a `__print_symbolic(REC-><field>, ...)` in print fmt,
    /// e.g. the drop reasons of `skb:kfree_skb`.
    pub fn symbols(&self, field: &str) -> BTreeMap<u64, String> {
        let mut table = BTreeMap::new();
        let marker = format!("__print_symbolic(REC->{field},");
        let Some(start) = self.print_fmt.find(&marker) else {
            return table;
        };
        let mut rest = &self.print_fmt[start + marker.len()..];
        while let Some(open) = rest.trim_start().strip_prefix('{') {
            let Some(close) = open.find('}') else { break };
            let entry = &open[..close];
            if let Some((value, name)) = entry.split_once(',') {
                let name = name.trim().trim_matches('"');
                let value = value.trim();
                let value = match value.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16).ok(),
                    None => value.parse().ok(),
                };
                if let Some(value) = value {
                    table.insert(value, name.to_owned());
                }
            }
            rest = open[close + 1..].trim_start().trim_start_matches(',');
        }
        table
    }
}

/// Parses `field:unsigned int vec;\toffset:8;\tsize:4;\tsigned:0;`.
fn parse_field(line: &str) -> Result<Field, String> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    for part in line
        .split(';')
        .map(str::trim)
        .filter(|part| !part.is_empty())
    {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("no ':' in {part:?}"))?;
        match key.trim() {
            "field" => decl = Some(value.trim()),
            "offset" => offset = Some(parse_number(value)?),
            "size" => size = Some(parse_number(value)?),
            _ => {}
        }
    }
    let decl = decl.ok_or("missing field declaration")?;
    let offset = offset.ok_or("missing offset")?;
    let size = size.ok_or("missing size")?;
    // The name is the last identifier, before an array suffix (`char prev_comm[16]`); a
    // `__data_loc char[] name` has its brackets before the name.
    let without_array = match (decl.ends_with(']'), decl.rfind('[')) {
        (true, Some(open)) => decl[..open].trim_end(),
        _ => decl,
    };
    let name_start = without_array
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |pos| pos + 1);
    let name = &without_array[name_start..];
    if name.is_empty() {
        return Err(format!("no field name in {decl:?}"));
    }
    let c_type = format!(
        "{}{}",
        without_array[..name_start].trim_end(),
        &decl[without_array.len()..]
    );
    Ok(Field {
        c_type,
        name: name.to_owned(),
        offset,
        size,
    })
}

fn parse_number(value: &str) -> Result<u16, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("bad number {:?}", value.trim()))
}

/// Where format files come from: the live tracefs or a fixture directory in tests.
pub trait FormatSource {
    /// The format of `category:name`; `Ok(None)` if this kernel has no such tracepoint.
    fn format(&self, category: &str, name: &str) -> Result<Option<Format>, TracefsError>;
}

/// Format files under a tracefs root (`<root>/events/<category>/<name>/format`).
#[derive(Clone, Debug)]
pub struct FormatDir(pub PathBuf);

impl FormatSource for FormatDir {
    fn format(&self, category: &str, name: &str) -> Result<Option<Format>, TracefsError> {
        let path = self
            .0
            .join("events")
            .join(category)
            .join(name)
            .join("format");
        match fs::read_to_string(&path) {
            Ok(text) => Format::parse(&text, &path).map(Some),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(TracefsError::Read { path, source }),
        }
    }
}

/// Why a tracepoint will not be attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The kernel has no such tracepoint.
    Missing,
    /// The user asked to leave it out (`--without`).
    Excluded,
    /// A required field is missing or has an unexpected type or size.
    Layout(String),
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("not present on this kernel"),
            Self::Excluded => f.write_str("excluded with --without"),
            Self::Layout(reason) => write!(f, "unexpected layout: {reason}"),
        }
    }
}

/// The result of reading every format file the programs need.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The `OFFSETS` global for the eBPF programs.
    pub offsets: [u16; SLOT_COUNT],
    /// Kinds whose tracepoint can be attached.
    pub available: Vec<EventKind>,
    /// Kinds whose tracepoint cannot, and why.
    pub unavailable: Vec<(EventKind, Unavailable)>,
    /// Drop reason names of `skb:kfree_skb`, by value.
    pub drop_reasons: BTreeMap<u64, String>,
}

impl Layout {
    /// Reads the format of every tracepoint in [`EventKind::ALL`] except those in `without`
    /// (given as `category:name` or `name`).
    pub fn resolve(source: &impl FormatSource, without: &[String]) -> Result<Self, TracefsError> {
        let mut layout = Layout {
            offsets: [ABSENT; SLOT_COUNT],
            available: Vec::new(),
            unavailable: Vec::new(),
            drop_reasons: BTreeMap::new(),
        };
        for kind in EventKind::ALL {
            let (category, name) = kind.tracepoint();
            let excluded = without
                .iter()
                .any(|w| w == name || *w == format!("{category}:{name}"));
            if excluded {
                layout.unavailable.push((kind, Unavailable::Excluded));
                continue;
            }
            let Some(format) = source.format(category, name)? else {
                layout.unavailable.push((kind, Unavailable::Missing));
                continue;
            };
            match slot_offsets(&format, category, name) {
                Ok(found) => {
                    for (slot, offset) in found {
                        layout.offsets[slot as usize] = offset;
                    }
                    if kind == EventKind::KfreeSkb {
                        layout.drop_reasons = format.symbols("reason");
                    }
                    layout.available.push(kind);
                }
                Err(reason) => layout.unavailable.push((kind, Unavailable::Layout(reason))),
            }
        }
        Ok(layout)
    }

    /// Whether this kind's tracepoint will be attached.
    pub fn has(&self, kind: EventKind) -> bool {
        self.available.contains(&kind)
    }
}

/// Offsets of every slot of one tracepoint, or why its layout is unusable.
fn slot_offsets(format: &Format, category: &str, name: &str) -> Result<Vec<(Slot, u16)>, String> {
    let mut found = Vec::new();
    for slot in Slot::ALL {
        let spec = slot.spec();
        if spec.category != category || spec.tracepoint != name {
            continue;
        }
        let Some(field) = format.field(spec.field) else {
            if spec.optional {
                continue;
            }
            return Err(format!("no field `{}`", spec.field));
        };
        let fits = match spec.ty {
            FieldType::Int(size) => u16::from(size) == field.size,
            FieldType::DataLoc => field.c_type.starts_with("__data_loc") && field.size == 4,
            FieldType::Comm => field.size == tracer_common::NAME_LEN as u16,
        };
        if !fits {
            let problem = format!(
                "field `{}` is `{}` of {} bytes, expected {:?}",
                spec.field, field.c_type, field.size, spec.ty
            );
            if spec.optional {
                log::warn!("{category}:{name}: {problem}; leaving it out");
                continue;
            }
            return Err(problem);
        }
        found.push((slot, field.offset));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixtures() -> FormatDir {
        FormatDir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tracefs-6.18"))
    }

    #[test]
    fn parses_field_lines() {
        let field =
            parse_field("field:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;").unwrap();
        assert_eq!(field.name, "prev_comm");
        assert_eq!(field.c_type, "char[16]");
        assert_eq!((field.offset, field.size), (8, 16));
        let field =
            parse_field("field:__data_loc char[] name;\toffset:20;\tsize:4;\tsigned:0;").unwrap();
        assert_eq!(field.name, "name");
        assert_eq!(field.c_type, "__data_loc char[]");
        let field =
            parse_field("field:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;").unwrap();
        assert_eq!(field.name, "skbaddr");
        assert_eq!(field.c_type, "const void *");
    }

    #[test]
    fn rejects_malformed_lines_with_position() {
        let err = Format::parse(
            "name: x\nformat:\n\tfield:int a;\toffset:x;\tsize:4;\n",
            Path::new("f"),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "f: line 3: bad number \"x\"");
        let err = Format::parse("\tfield:int a;\tsize:4;\n", Path::new("f")).unwrap_err();
        assert_eq!(err.to_string(), "f: line 1: missing offset");
    }

    #[test]
    fn this_kernels_fixtures_give_every_offset() {
        let layout = Layout::resolve(&fixtures(), &[]).unwrap();
        assert!(layout.unavailable.is_empty(), "{:?}", layout.unavailable);
        assert_eq!(layout.available.len(), EventKind::ALL.len());
        let at = |slot: Slot| layout.offsets[slot as usize];
        assert_eq!(at(Slot::SwitchPrevState), 32);
        assert_eq!(at(Slot::SwitchNextComm), 40);
        assert_eq!(at(Slot::SwitchNextPid), 56);
        assert_eq!(at(Slot::GroSkbAddr), 24);
        assert_eq!(at(Slot::KfreeReason), 36);
        assert_eq!(at(Slot::RecvLenRet), 20);
        assert_eq!(at(Slot::ExitRecvfromRet), 16);
        assert_eq!(at(Slot::NapiPollDev), 16);
        assert_eq!(
            layout.drop_reasons.get(&2).map(String::as_str),
            Some("NOT_SPECIFIED")
        );
        assert_eq!(
            layout.drop_reasons.get(&6).map(String::as_str),
            Some("SOCKET_RCVBUFF")
        );
    }

    #[test]
    fn an_older_layout_moves_offsets_and_drops_optional_fields() {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&fixtures().0, dir.path());
        // A sched_switch whose fields sit elsewhere (a different common header), and a
        // kfree_skb from before drop reasons existed (kernels before 5.17).
        let switch = "name: sched_switch\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:char prev_comm[16];\toffset:12;\tsize:16;\tsigned:1;\n\
            \tfield:pid_t prev_pid;\toffset:28;\tsize:4;\tsigned:1;\n\
            \tfield:int prev_prio;\toffset:32;\tsize:4;\tsigned:1;\n\
            \tfield:long prev_state;\toffset:40;\tsize:8;\tsigned:1;\n\
            \tfield:char next_comm[16];\toffset:48;\tsize:16;\tsigned:1;\n\
            \tfield:pid_t next_pid;\toffset:64;\tsize:4;\tsigned:1;\n\
            \tfield:int next_prio;\toffset:68;\tsize:4;\tsigned:1;\n\nprint fmt: \"x\"\n";
        fs::write(dir.path().join("events/sched/sched_switch/format"), switch).unwrap();
        let kfree = "name: kfree_skb\nformat:\n\
            \tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
            \tfield:void * location;\toffset:16;\tsize:8;\tsigned:0;\n\
            \tfield:unsigned short protocol;\toffset:24;\tsize:2;\tsigned:0;\n\nprint fmt: \"x\"\n";
        fs::write(dir.path().join("events/skb/kfree_skb/format"), kfree).unwrap();
        fs::remove_dir_all(dir.path().join("events/sock/sk_data_ready")).unwrap();
        // A layout that cannot work: sock_recv_length with a 2-byte ret.
        let recv_len = fs::read_to_string(dir.path().join("events/sock/sock_recv_length/format"))
            .unwrap()
            .replace(
                "int ret;\toffset:20;\tsize:4;",
                "short ret;\toffset:20;\tsize:2;",
            );
        fs::write(
            dir.path().join("events/sock/sock_recv_length/format"),
            recv_len,
        )
        .unwrap();

        let layout = Layout::resolve(&FormatDir(dir.path().to_owned()), &[]).unwrap();
        let at = |slot: Slot| layout.offsets[slot as usize];
        assert_eq!(at(Slot::SwitchPrevPid), 28);
        assert_eq!(at(Slot::SwitchPrevState), 40);
        assert_eq!(at(Slot::SwitchNextComm), 48);
        assert_eq!(at(Slot::SwitchNextPid), 64);
        assert_eq!(at(Slot::KfreeProtocol), 24);
        assert_eq!(at(Slot::KfreeReason), ABSENT);
        assert!(layout.has(EventKind::KfreeSkb));
        assert!(layout.drop_reasons.is_empty());
        assert!(!layout.has(EventKind::SkDataReady));
        assert!(
            layout
                .unavailable
                .contains(&(EventKind::SkDataReady, Unavailable::Missing))
        );
        let (_, why) = layout
            .unavailable
            .iter()
            .find(|(kind, _)| *kind == EventKind::SockRecvLength)
            .unwrap();
        assert_eq!(
            why.to_string(),
            "unexpected layout: field `ret` is `short` of 2 bytes, expected Int(4)"
        );
        assert_eq!(layout.available.len(), EventKind::ALL.len() - 2);
    }

    #[test]
    fn without_excludes_by_either_name() {
        let without = vec!["sock:sk_data_ready".to_owned(), "napi_poll".to_owned()];
        let layout = Layout::resolve(&fixtures(), &without).unwrap();
        assert!(!layout.has(EventKind::SkDataReady));
        assert!(!layout.has(EventKind::NapiPoll));
        assert!(
            layout
                .unavailable
                .contains(&(EventKind::NapiPoll, Unavailable::Excluded))
        );
        assert_eq!(layout.offsets[Slot::NapiPollWork as usize], ABSENT);
    }

    fn copy_tree(from: &Path, to: &Path) {
        for entry in fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                fs::create_dir_all(&target).unwrap();
                copy_tree(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}
