//! Kernel struct offsets from BTF (`/sys/kernel/btf/vmlinux`): rustc emits no CO-RE
//! relocations, so the few struct fields the programs read (`sk_buff.data`,
//! `tcp_sock.copied_seq`, and the path `task_struct.nsproxy->net_ns->ns.inum` to the reader's
//! network namespace) are located here at start-up and handed over as read-only globals.
//!
//! A small reader of the BTF type and string sections (the format of the kernel's
//! `Documentation/bpf/btf.rst`, version 1), bounds-checked throughout: the input is a file.

use std::{fmt, path::Path};

use tracer_common::{MEMBER_COUNT, Member, abi::NO_OFFSET};

/// Where the running kernel publishes its own BTF (Linux 5.4+, `CONFIG_DEBUG_INFO_BTF`).
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const HEADER_LEN: usize = 24;
const TYPE_LEN: usize = 12;

// BTF_KIND_* values.
const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

/// Why BTF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read (absent: the kernel has no `CONFIG_DEBUG_INFO_BTF`).
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// The bytes are not BTF this reader understands.
    #[error("not valid BTF: {0}")]
    Format(&'static str),
}

/// Parsed BTF: the raw bytes and where each type record starts.
pub struct Btf {
    data: Vec<u8>,
    /// Byte offset in `data` of type id `i + 1` (id 0 is void).
    types: Vec<usize>,
    strings: (usize, usize),
}

impl fmt::Debug for Btf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Btf")
            .field("types", &self.types.len())
            .finish()
    }
}

/// One `struct btf_type` record.
#[derive(Clone, Copy)]
struct TypeRecord {
    at: usize,
    name_off: u32,
    kind: u32,
    vlen: usize,
    kind_flag: bool,
    size_or_type: u32,
}

impl Btf {
    /// The running kernel's BTF.
    pub fn from_kernel() -> Result<Self, BtfError> {
        Self::from_file(Path::new(VMLINUX))
    }

    /// BTF from a raw `.BTF` file such as `/sys/kernel/btf/vmlinux`.
    pub fn from_file(path: &Path) -> Result<Self, BtfError> {
        let data = std::fs::read(path).map_err(|source| BtfError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(data)
    }

    /// Parses raw BTF (little-endian, as on every host this tracer runs on).
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfError> {
        if data.len() < HEADER_LEN || u16_at(&data, 0) != Some(MAGIC) {
            return Err(BtfError::Format("bad magic"));
        }
        let field = |at| u32_at(&data, at).map(|v| v as usize);
        let (Some(hdr_len), Some(type_off), Some(type_len), Some(str_off), Some(str_len)) =
            (field(4), field(8), field(12), field(16), field(20))
        else {
            return Err(BtfError::Format("short header"));
        };
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off)?;
            let end = start.checked_add(len)?;
            (end <= data.len()).then_some((start, end))
        };
        let (Some((type_start, type_end)), Some((str_start, str_end))) =
            (section(type_off, type_len), section(str_off, str_len))
        else {
            return Err(BtfError::Format("section beyond the end of the data"));
        };
        let mut types = Vec::new();
        let mut at = type_start;
        while at < type_end {
            let record = record_at(&data, at).ok_or(BtfError::Format("truncated type"))?;
            let extra = match record.kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * record.vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * record.vlen,
                0..=KIND_ENUM64 => 0,
                _ => return Err(BtfError::Format("unknown type kind")),
            };
            types.push(at);
            at += TYPE_LEN + extra;
        }
        if at != type_end {
            return Err(BtfError::Format("type section ends inside a type"));
        }
        Ok(Self {
            data,
            types,
            strings: (str_start, str_end),
        })
    }

    /// Byte offset of `member` in `struct name`, looking through anonymous structs and
    /// unions; `None` if the struct or member does not exist or is a bit field.
    pub fn member_offset(&self, name: &str, member: &str) -> Option<u32> {
        self.member(name, member).map(|(offset, _)| offset)
    }

    /// Byte offset and size of `member` in `struct name`, as [`Btf::member_offset`].
    pub fn member_layout(&self, name: &str, member: &str) -> Option<(u32, u32)> {
        let (offset, ty) = self.member(name, member)?;
        Some((offset, self.type_size(ty)?))
    }

    /// Byte offset and type id of `member` in `struct name`.
    fn member(&self, name: &str, member: &str) -> Option<(u32, u32)> {
        let id = (1..=self.types.len() as u32).find(|&id| {
            self.record(id)
                .is_some_and(|r| r.kind == KIND_STRUCT && self.string(r.name_off) == Some(name))
        })?;
        self.find_member(id, member, 0)
    }

    fn find_member(&self, id: u32, member: &str, base_bits: u32) -> Option<(u32, u32)> {
        let record = self.record(id)?;
        for index in 0..record.vlen {
            let at = record.at + TYPE_LEN + 12 * index;
            let name_off = u32_at(&self.data, at)?;
            let ty = u32_at(&self.data, at + 4)?;
            let raw = u32_at(&self.data, at + 8)?;
            let (bits, bitfield) = if record.kind_flag {
                (raw & 0x00ff_ffff, raw >> 24 != 0)
            } else {
                (raw, false)
            };
            let bits = base_bits.checked_add(bits)?;
            let member_name = self.string(name_off)?;
            if member_name == member {
                return (!bitfield && bits % 8 == 0).then_some((bits / 8, ty));
            }
            if member_name.is_empty() {
                let inner = self.skip_qualifiers(ty)?;
                if self
                    .record(inner)
                    .is_some_and(|r| r.kind == KIND_STRUCT || r.kind == KIND_UNION)
                    && let Some(found) = self.find_member(inner, member, bits)
                {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The offset of `member` along the first of its paths that this BTF has whole, with
    /// the size the program reads.
    pub fn locate(&self, member: Member) -> Option<u32> {
        let spec = member.spec();
        spec.paths.iter().find_map(|path| {
            let mut offset = 0u32;
            let mut size = 0;
            for (name, field) in path.iter() {
                let (at, len) = self.member_layout(name, field)?;
                offset = offset.checked_add(at)?;
                size = len;
            }
            (size == spec.size).then_some(offset)
        })
    }

    /// Size in bytes of type `id` (integers, pointers, enums, structs, unions, arrays).
    fn type_size(&self, id: u32) -> Option<u32> {
        let id = self.skip_qualifiers(id)?;
        let record = self.record(id)?;
        match record.kind {
            KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION => {
                Some(record.size_or_type)
            }
            KIND_PTR => Some(8),
            KIND_ARRAY => {
                let elem = u32_at(&self.data, record.at + TYPE_LEN)?;
                let count = u32_at(&self.data, record.at + TYPE_LEN + 8)?;
                // One level of element type only: no member read here is a nested array.
                let elem_record = self.record(self.skip_qualifiers(elem)?)?;
                let elem_size = match elem_record.kind {
                    KIND_INT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION => {
                        elem_record.size_or_type
                    }
                    KIND_PTR => 8,
                    _ => return None,
                };
                elem_size.checked_mul(count)
            }
            _ => None,
        }
    }

    /// Follows typedefs and qualifiers to the type they name (bounded: BTF may be hostile).
    fn skip_qualifiers(&self, mut id: u32) -> Option<u32> {
        for _ in 0..32 {
            let record = self.record(id)?;
            match record.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = record.size_or_type;
                }
                _ => return Some(id),
            }
        }
        None
    }

    fn record(&self, id: u32) -> Option<TypeRecord> {
        let at = *self.types.get((id as usize).checked_sub(1)?)?;
        record_at(&self.data, at)
    }

    fn string(&self, offset: u32) -> Option<&str> {
        let (start, end) = self.strings;
        let from = start.checked_add(offset as usize)?;
        let bytes = self.data.get(from..end)?;
        let len = bytes.iter().position(|&b| b == 0)?;
        std::str::from_utf8(&bytes[..len]).ok()
    }
}

fn record_at(data: &[u8], at: usize) -> Option<TypeRecord> {
    let info = u32_at(data, at + 4)?;
    Some(TypeRecord {
        at,
        name_off: u32_at(data, at)?,
        kind: (info >> 24) & 0x1f,
        vlen: (info & 0xffff) as usize,
        kind_flag: info >> 31 != 0,
        size_or_type: u32_at(data, at + 8)?,
    })
}

fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Offsets of the kernel struct fields the programs read; `None` where BTF lacks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructOffsets {
    /// `struct sk_buff.data`: the packet's network header at netif_receive_skb.
    pub skb_data: Option<u32>,
    /// `struct tcp_sock.copied_seq`: the next sequence number a read will return.
    pub tcp_copied_seq: Option<u32>,
    /// `struct task_struct.nsproxy`: the task's namespaces.
    pub task_nsproxy: Option<u32>,
    /// `struct nsproxy.net_ns`: the network namespace among them.
    pub nsproxy_net_ns: Option<u32>,
    /// `struct net.ns` + `struct ns_common.inum`: that namespace's inode number.
    pub net_ns_inum: Option<u32>,
    /// The BTF tracepoint programs' members ([`Member`] index; `NO_OFFSET` where unknown).
    pub members: [u32; MEMBER_COUNT],
}

impl Default for StructOffsets {
    fn default() -> Self {
        Self {
            skb_data: None,
            tcp_copied_seq: None,
            task_nsproxy: None,
            nsproxy_net_ns: None,
            net_ns_inum: None,
            members: [NO_OFFSET; MEMBER_COUNT],
        }
    }
}

impl StructOffsets {
    /// The offsets in this BTF.
    pub fn from_btf(btf: &Btf) -> Self {
        Self {
            skb_data: btf.member_offset("sk_buff", "data"),
            tcp_copied_seq: btf.member_offset("tcp_sock", "copied_seq"),
            task_nsproxy: btf.member_offset("task_struct", "nsproxy"),
            nsproxy_net_ns: btf.member_offset("nsproxy", "net_ns"),
            net_ns_inum: btf
                .member_offset("net", "ns")
                .zip(btf.member_offset("ns_common", "inum"))
                .and_then(|(ns, inum)| ns.checked_add(inum)),
            members: Member::ALL.map(|member| btf.locate(member).unwrap_or(NO_OFFSET)),
        }
    }

    /// The offset of a BTF tracepoint program's member, if BTF had it.
    pub fn member(&self, member: Member) -> Option<u32> {
        Some(self.members[member as usize]).filter(|&off| off != NO_OFFSET)
    }

    /// Whether the whole path to the reader's network namespace inode is known.
    pub fn has_netns(&self) -> bool {
        self.task_nsproxy.is_some() && self.nsproxy_net_ns.is_some() && self.net_ns_inum.is_some()
    }

    /// The running kernel's offsets, or the reason there are none.
    pub fn from_kernel() -> Result<Self, BtfError> {
        Btf::from_kernel().map(|btf| Self::from_btf(&btf))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF bytes: `strings` is the string section, `types` the type records.
    fn blob(strings: &[u8], types: &[u32]) -> Vec<u8> {
        let type_bytes: Vec<u8> = types.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend(MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        for word in [
            HEADER_LEN as u32,
            0,
            type_bytes.len() as u32,
            type_bytes.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(word.to_le_bytes());
        }
        out.extend(type_bytes);
        out.extend(strings);
        out
    }

    const fn info(kind: u32, vlen: u32, kind_flag: bool) -> u32 {
        (kind_flag as u32) << 31 | kind << 24 | vlen
    }

    /// `struct sk_buff { int len; union { struct { int x; }; }; void *data; }` shaped records:
    /// ids 1 int, 2 anonymous struct {x at 0}, 3 anonymous union {struct at 0},
    /// 4 sk_buff {len at 0, union at 32 bits, data at 128 bits}, 5 ptr.
    fn skb_like() -> Vec<u8> {
        let strings = b"\0int\0x\0sk_buff\0len\0data\0flags\0";
        // offsets: int=1 x=5 sk_buff=7 len=15 data=19 flags=24
        let types = [
            1,
            info(KIND_INT, 0, false),
            4,
            0x20, // id 1: int
            0,
            info(KIND_STRUCT, 1, false),
            4,
            5,
            1,
            0, // id 2: struct { int x; }
            0,
            info(KIND_UNION, 1, false),
            4,
            0,
            2,
            0, // id 3: union { struct; }
            7,
            info(KIND_STRUCT, 4, true),
            24,
            15,
            1,
            0,
            0,
            3,
            32,
            19,
            5,
            128,
            24,
            1,
            1 << 24 | 160, // id 4: sk_buff, flags is a 1-bit field
            0,
            2 << 24,
            0, // id 5: void *
        ];
        blob(strings, &types)
    }

    #[test]
    fn finds_direct_and_anonymous_members() {
        let btf = Btf::parse(skb_like()).unwrap();
        assert_eq!(btf.member_offset("sk_buff", "len"), Some(0));
        assert_eq!(btf.member_offset("sk_buff", "data"), Some(16));
        assert_eq!(
            btf.member_offset("sk_buff", "x"),
            Some(4),
            "through the union"
        );
        assert_eq!(btf.member_offset("sk_buff", "flags"), None, "a bit field");
        assert_eq!(btf.member_layout("sk_buff", "len"), Some((0, 4)));
        assert_eq!(
            btf.member_layout("sk_buff", "data"),
            Some((16, 8)),
            "a pointer"
        );
        assert_eq!(btf.member_offset("sk_buff", "nope"), None);
        assert_eq!(btf.member_offset("tcp_sock", "copied_seq"), None);
    }

    #[test]
    fn rejects_damaged_input_without_panicking() {
        assert!(Btf::parse(Vec::new()).is_err());
        assert!(Btf::parse(vec![0; 64]).is_err());
        let good = skb_like();
        for cut in 0..good.len() {
            let _ = Btf::parse(good[..cut].to_vec());
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0xff;
            if let Ok(btf) = Btf::parse(bad) {
                let _ = btf.member_offset("sk_buff", "x");
            }
        }
    }

    #[test]
    fn running_kernel_has_the_fields_when_it_has_btf() {
        match StructOffsets::from_kernel() {
            Ok(offsets) => {
                assert!(offsets.skb_data.is_some(), "sk_buff.data in vmlinux BTF");
                assert!(offsets.tcp_copied_seq.is_some(), "tcp_sock.copied_seq");
                assert!(offsets.has_netns(), "task_struct.nsproxy->net_ns->ns.inum");
                for member in Member::ALL {
                    assert!(
                        offsets.member(member).is_some(),
                        "{member:?} in vmlinux BTF"
                    );
                }
            }
            Err(err) => eprintln!("skipping: no kernel BTF here ({err})"),
        }
    }
}
