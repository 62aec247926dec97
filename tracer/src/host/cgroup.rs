//! Readers' cgroups by path, so a journey names its container: a cgroup v2 id (what
//! `bpf_get_current_cgroup_id` returns; since Linux 5.5 the inode number of the cgroup's
//! directory) -> its path below the cgroup2 mount, e.g. `/system.slice/docker-1f2e.scope`.
//!
//! Live, an id is looked up through the reader's `/proc/<pid>/cgroup` (one read and one
//! stat), then by a bounded walk of the hierarchy at most once a second; answers are cached,
//! misses too. A recording carries the table of the hierarchy at its start
//! ([`snapshot`]). Paths are the host's names: any cgroup owner picks them, so printing them
//! needs `sink::escape`.

use std::{
    collections::{BTreeMap, VecDeque},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use rustc_hash::FxHashMap;

/// Directories one walk of the hierarchy visits at most (a host with more cgroups than this
/// gets paths for the first ones in breadth-first order, and for the rest through /proc).
pub const MAX_WALK: usize = 4096;
/// Ids remembered at most before the cache starts again.
const MAX_KNOWN: usize = 65_536;
/// Time between two walks at least: a stream of unknown ids cannot turn into a stream of walks.
const WALK_INTERVAL: Duration = Duration::from_secs(1);

/// Where the paths come from: this host now, a recording's table, or nowhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CgroupSource {
    /// No paths (tests, or a caller that does not want them).
    #[default]
    None,
    /// The table a recording was made with (id -> path).
    Recorded(BTreeMap<u64, String>),
    /// This host, now (live tracing).
    Live,
}

/// Cached id -> path lookups.
#[derive(Debug)]
pub struct CgroupPaths {
    /// The cgroup2 mount point when resolving live.
    root: Option<PathBuf>,
    /// Looked up for every journey: Fx-hashed (ids are integers; SipHash cost ~50 ns each).
    known: FxHashMap<u64, Option<Arc<str>>>,
    last_walk: Option<Instant>,
}

impl CgroupPaths {
    /// Lookups answered from `source`.
    pub fn new(source: CgroupSource) -> Self {
        let (root, known) = match source {
            CgroupSource::None => (None, FxHashMap::default()),
            CgroupSource::Recorded(table) => (
                None,
                table
                    .into_iter()
                    .map(|(id, path)| (id, Some(Arc::from(path))))
                    .collect(),
            ),
            CgroupSource::Live => (cgroup2_mount(), FxHashMap::default()),
        };
        Self {
            root,
            known,
            last_walk: None,
        }
    }

    /// The path of cgroup `id`; `pid`, a process that was in it, makes the lookup cheap.
    pub fn path(&mut self, id: u64, pid: Option<u32>) -> Option<Arc<str>> {
        if let Some(known) = self.known.get(&id) {
            return known.clone();
        }
        let root = self.root.clone()?;
        if self.known.len() >= MAX_KNOWN {
            self.known.clear();
        }
        if let Some(path) = pid.and_then(|pid| through_proc(&root, pid, id)) {
            let path: Arc<str> = Arc::from(path);
            self.known.insert(id, Some(path.clone()));
            return Some(path);
        }
        if self
            .last_walk
            .is_some_and(|walked| walked.elapsed() < WALK_INTERVAL)
        {
            return None; // not cached: asked again after the interval
        }
        self.last_walk = Some(Instant::now());
        for (found, path) in walk(&root, MAX_WALK) {
            self.known
                .entry(found)
                .or_insert_with(|| Some(Arc::from(path)));
        }
        self.known.entry(id).or_insert(None).clone()
    }
}

/// The cgroup v2 hierarchy's mount point (the first `cgroup2` in /proc/self/mounts).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        let (_, point, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        (fstype == "cgroup2").then(|| PathBuf::from(unescape_mount(point)))
    })
}

/// Every cgroup of this host's v2 hierarchy (at most [`MAX_WALK`]), id -> path: the table a
/// recording carries. Empty without cgroup v2.
pub fn snapshot() -> BTreeMap<u64, String> {
    cgroup2_mount().map_or_else(BTreeMap::new, |root| {
        walk(&root, MAX_WALK).into_iter().collect()
    })
}

/// The path of cgroup `id` if `pid` is in it now (its `0::` line in /proc/<pid>/cgroup).
fn through_proc(root: &Path, pid: u32, id: u64) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let relative = text.lines().find_map(|line| line.strip_prefix("0::"))?;
    let dir = root.join(relative.trim_start_matches('/'));
    (std::fs::metadata(dir).ok()?.ino() == id).then(|| relative.to_owned())
}

/// Breadth-first walk below `root`: (inode, `/relative/path`) of at most `max` directories.
fn walk(root: &Path, max: usize) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    let mut queue = VecDeque::from([(root.to_path_buf(), String::from("/"))]);
    while let Some((dir, path)) = queue.pop_front() {
        if found.len() >= max {
            break;
        }
        // symlink_metadata: a cgroup is a directory, never a link to follow elsewhere.
        let Ok(meta) = std::fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        found.push((meta.ino(), path.clone()));
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if queue.len() + found.len() >= max {
                break;
            }
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                let child = if path == "/" {
                    format!("/{name}")
                } else {
                    format!("{path}/{name}")
                };
                queue.push_back((entry.path(), child));
            }
        }
    }
    found
}

/// A mount point as /proc/self/mounts writes it: space, tab, newline and backslash as
/// octal escapes (`\040`).
fn unescape_mount(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        let octal = bytes
            .get(at + 1..at + 4)
            .filter(|digits| bytes[at] == b'\\' && digits.iter().all(|d| (b'0'..=b'7').contains(d)))
            .map(|d| {
                d.iter()
                    .fold(0u32, |value, d| value * 8 + u32::from(d - b'0'))
            })
            .and_then(|value| u8::try_from(value).ok());
        match octal {
            Some(byte) => {
                out.push(byte);
                at += 4;
            }
            None => {
                out.push(bytes[at]);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_unescaped() {
        assert_eq!(unescape_mount("/sys/fs/cgroup"), "/sys/fs/cgroup");
        assert_eq!(unescape_mount("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mount("/x\\04"), "/x\\04", "a cut escape stays");
        assert_eq!(unescape_mount("\\777"), "\\777", "not a byte");
        assert_eq!(unescape_mount("\\377"), "\u{fffd}", "a byte, not UTF-8");
    }

    #[test]
    fn walks_a_tree_breadth_first_within_its_bound() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["a/b", "a/c", "d\x1b[31m"] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("a/file"), "").unwrap();
        let ino = |sub: &str| std::fs::metadata(dir.path().join(sub)).unwrap().ino();
        let mut all = walk(dir.path(), 100);
        all.sort_by(|x, y| x.1.cmp(&y.1));
        let paths: Vec<&str> = all.iter().map(|(_, path)| path.as_str()).collect();
        assert_eq!(paths, ["/", "/a", "/a/b", "/a/c", "/d\x1b[31m"]);
        assert!(all.contains(&(ino("a/c"), "/a/c".to_owned())));
        assert_eq!(walk(dir.path(), 2).len(), 2);
        assert!(walk(&dir.path().join("absent"), 10).is_empty());
    }

    #[test]
    fn recorded_tables_answer_without_the_host() {
        let table = BTreeMap::from([(7, "/system.slice/x.service".to_owned())]);
        let mut paths = CgroupPaths::new(CgroupSource::Recorded(table));
        assert_eq!(
            paths.path(7, None).as_deref(),
            Some("/system.slice/x.service")
        );
        assert_eq!(paths.path(8, Some(std::process::id())), None);
        assert_eq!(CgroupPaths::new(CgroupSource::None).path(7, None), None);
    }

    #[test]
    fn this_process_cgroup_resolves_live_when_cgroup_v2_is_mounted() {
        let Some(root) = cgroup2_mount() else {
            eprintln!("skipping: no cgroup2 mount here");
            return;
        };
        let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let Some(relative) = text.lines().find_map(|line| line.strip_prefix("0::")) else {
            eprintln!("skipping: this process has no cgroup v2 line");
            return;
        };
        let id = std::fs::metadata(root.join(relative.trim_start_matches('/')))
            .unwrap()
            .ino();
        let mut paths = CgroupPaths::new(CgroupSource::Live);
        assert_eq!(
            paths.path(id, Some(std::process::id())).as_deref(),
            Some(relative)
        );
        let mut walked = CgroupPaths::new(CgroupSource::Live);
        assert_eq!(
            walked.path(id, None).as_deref(),
            Some(relative),
            "by the walk"
        );
        assert_eq!(snapshot().get(&id).map(String::as_str), Some(relative));
    }
}
