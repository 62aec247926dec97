//! The open journeys by id. Ids are handed out in order and nearly every journey ends soon
//! after it opens, so the recent ids are a window indexed by `id - base` (an index for a
//! hash, a slot emptied for a removal); the few that stay open long (never read, a stalled
//! reader) move out of the window's front into a hash table, so the window stays bounded.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::Open;

/// Ids the window spans at most: beyond it, the oldest still open moves to the overflow.
const WINDOW: usize = 16_384;

#[derive(Debug, Default)]
pub(super) struct OpenTable {
    /// The id of `window[0]`.
    base: u64,
    /// Slots of ids `base..base + window.len()`; the front slot is always full (or the
    /// window empty).
    window: VecDeque<Option<Open>>,
    /// Open journeys older than `base`.
    overflow: FxHashMap<u64, Open>,
    /// Open journeys, in the window and the overflow.
    len: usize,
}

impl OpenTable {
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn slot(&self, id: u64) -> Option<usize> {
        let index = usize::try_from(id.checked_sub(self.base)?).ok()?;
        (index < self.window.len()).then_some(index)
    }

    #[inline]
    pub fn get(&self, id: &u64) -> Option<&Open> {
        match self.slot(*id) {
            Some(index) => self.window[index].as_ref(),
            None if *id < self.base => self.overflow.get(id),
            None => None,
        }
    }

    #[inline]
    pub fn get_mut(&mut self, id: &u64) -> Option<&mut Open> {
        match self.slot(*id) {
            Some(index) => self.window[index].as_mut(),
            None if *id < self.base => self.overflow.get_mut(id),
            None => None,
        }
    }

    #[inline]
    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    /// Adds a journey whose id is above every id given before (the engine counts them up).
    pub fn insert(&mut self, id: u64, open: Open) {
        if self.window.is_empty() {
            self.base = id;
        }
        let index = usize::try_from(id - self.base).expect("ids are handed out in order");
        while self.window.len() < index {
            self.window.push_back(None);
        }
        self.window.push_back(Some(open));
        self.len += 1;
        while self.window.len() > WINDOW {
            if let Some(Some(oldest)) = self.window.pop_front() {
                self.overflow.insert(self.base, oldest);
            }
            self.base += 1;
            self.trim_front();
        }
    }

    pub fn remove(&mut self, id: &u64) -> Option<Open> {
        let open = match self.slot(*id) {
            Some(index) => {
                let open = self.window[index].take();
                if index == 0 {
                    self.trim_front();
                }
                open
            }
            None if *id < self.base => self.overflow.remove(id),
            None => None,
        }?;
        self.len -= 1;
        Some(open)
    }

    /// Empty slots at the front are dropped: the window starts at an open journey.
    fn trim_front(&mut self) {
        while let Some(None) = self.window.front() {
            self.window.pop_front();
            self.base += 1;
        }
    }

    /// The ids of the open journeys, oldest first.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.overflow.keys().copied().collect();
        ids.sort_unstable();
        ids.extend(
            (self.base..)
                .zip(&self.window)
                .filter_map(|(id, slot)| slot.as_ref().map(|_| id)),
        );
        ids
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Open> {
        self.overflow
            .values_mut()
            .chain(self.window.iter_mut().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::{OpenTable, WINDOW};
    use crate::journey::engine::{Open, Phase};

    fn open(id: u64) -> Open {
        let mut journey = Box::<crate::journey::Journey>::default();
        journey.id = id;
        Open::new(journey, Phase::Stack, id)
    }

    #[test]
    fn journeys_open_long_move_to_the_overflow_and_stay_found() {
        let mut table = OpenTable::default();
        let last = 3 * WINDOW as u64;
        for id in 1..=last {
            table.insert(id, open(id));
            // Most end soon; every 1000th stays open.
            if id > 5 && !(id - 5).is_multiple_of(1000) {
                assert_eq!(table.remove(&(id - 5)).map(|o| o.skb), Some(id - 5));
            }
        }
        assert!(table.window.len() <= WINDOW);
        assert!(!table.overflow.is_empty());
        // Still open: every 1000th id, and the last five (never due for removal).
        let expected: Vec<u64> = (1..=last)
            .filter(|id| id.is_multiple_of(1000) || *id > last - 5)
            .collect();
        assert_eq!(table.ids(), expected);
        assert_eq!(table.len(), expected.len());
        for id in &expected {
            assert_eq!(table.get(id).map(|o| o.journey.id), Some(*id));
        }
        assert!(table.get(&6).is_none() && table.get(&(last + 1)).is_none());
        assert_eq!(table.values_mut().count(), expected.len());
        for id in &expected {
            assert!(table.remove(id).is_some());
            assert!(!table.contains_key(id));
        }
        assert_eq!(table.len(), 0);
        assert!(table.ids().is_empty());
    }
}
