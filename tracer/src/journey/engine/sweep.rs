//! Upkeep of the link tables: links to journeys that are gone are dropped every
//! `SWEEP_EVERY` events, and the task-name and owner tables are bounded.

use std::collections::VecDeque;

use super::{Engine, MAX_COMMS, Phase};
use crate::journey::model::Shared;

impl Engine {
    /// Drops links to journeys that are gone, and forgets task names when there are too many.
    pub(super) fn sweep(&mut self) {
        let open = &self.open;
        let before = self.table_entries();
        self.skbs.retain(|_, id| open.contains_key(id));
        for ids in self.awaiting_ready.values_mut() {
            ids.retain(|id| open.contains_key(id));
        }
        self.awaiting_ready.retain(|_, ids| !ids.is_empty());
        self.unlinked_tcp
            .retain(|id| open.get(id).is_some_and(|o| o.phase == Phase::Stack));
        for (_, merged) in self.backlog_merged.values_mut() {
            merged.retain(|id| {
                open.get(id)
                    .is_some_and(|o| matches!(o.phase, Phase::Stack | Phase::Queued))
            });
        }
        self.backlog_merged
            .retain(|_, (_, merged)| !merged.is_empty());
        for queue in self.sockets.values_mut() {
            queue.ids.retain(|id| open.contains_key(id));
        }
        self.sockets.retain(|_, queue| !queue.is_idle());
        for ids in self
            .woken
            .values_mut()
            .chain(self.reading.values_mut())
            .chain(self.touched.values_mut())
        {
            ids.retain(|id| open.contains_key(id));
        }
        self.woken.retain(|_, ids| !ids.is_empty());
        self.reading.retain(|_, ids| !ids.is_empty());
        self.touched.retain(|_, ids| !ids.is_empty());
        for queue in self.by_task.values_mut() {
            queue.retain(|id| open.contains_key(id));
        }
        self.by_task.retain(|_, queue| !queue.is_empty());
        if self.comms.len() > MAX_COMMS {
            self.comms.clear();
            self.last_comm = None;
            self.comms.extend(
                self.config
                    .comms
                    .iter()
                    .map(|(tid, comm)| (*tid, Shared::from(comm.as_str()))),
            );
        }
        if self.owners.len() > MAX_COMMS {
            self.owners.clear();
            self.task_sockets.clear();
        }
        if self.sockets.len() > MAX_COMMS {
            // Owners of sockets nobody has used for a while; queues with packets stay.
            self.sockets.retain(|_, queue| !queue.ids.is_empty());
        }
        self.stats.swept += before.saturating_sub(self.table_entries()) as u64;
    }

    fn table_entries(&self) -> usize {
        self.skbs.len()
            + self.awaiting_ready.values().map(Vec::len).sum::<usize>()
            + self.unlinked_tcp.len()
            + self
                .backlog_merged
                .values()
                .map(|(_, ids)| ids.len())
                .sum::<usize>()
            + self.sockets.values().map(|q| q.ids.len()).sum::<usize>()
            + self.woken.values().map(|ids| ids.len()).sum::<usize>()
            + self.reading.values().map(|ids| ids.len()).sum::<usize>()
            + self.touched.values().map(|ids| ids.len()).sum::<usize>()
            + self.by_task.values().map(VecDeque::len).sum::<usize>()
            + self.comms.len()
            + self.owners.len()
    }
}
