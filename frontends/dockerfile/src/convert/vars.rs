//! `Vars`: variables in declaration order with an index by name, so that a build file with a
//! hundred thousand of them is read in linear time, not quadratic.
//!
//! A plain ordered map: it must never know what ARG, ENV or a stage is.

use super::*;

/// Variables in the order they were declared, with an index by name, so that a build file
/// with a hundred thousand of them is read in linear time, not quadratic.
#[derive(Debug, Clone)]
pub(super) struct Vars<V> {
    /// In order; `None` where an entry was moved to the end.
    slots: Vec<Option<(String, V)>>,
    /// Name to slot.
    index: BTreeMap<String, usize>,
}

impl<V> Default for Vars<V> {
    fn default() -> Self {
        Vars { slots: Vec::new(), index: BTreeMap::new() }
    }
}

impl<V> Vars<V> {
    pub(super) fn get(&self, key: &str) -> Option<&V> {
        let slot = *self.index.get(key)?;
        self.slots[slot].as_ref().map(|(_, v)| v)
    }

    pub(super) fn contains(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// Set a variable where it stands, or append it.
    pub(super) fn set(&mut self, key: &str, value: V) {
        match self.index.get(key) {
            Some(&slot) => {
                if let Some((_, v)) = &mut self.slots[slot] {
                    *v = value;
                }
            }
            None => self.append(key, value),
        }
    }

    /// Set a variable and move it to the end.
    pub(super) fn set_last(&mut self, key: &str, value: V) {
        if let Some(slot) = self.index.remove(key) {
            self.slots[slot] = None;
        }
        self.append(key, value);
        // Drop the holes once they are most of the list.
        if self.slots.len() > 64 && self.index.len() * 2 < self.slots.len() {
            self.slots.retain(Option::is_some);
            for (slot, entry) in self.slots.iter().enumerate() {
                if let Some((k, _)) = entry {
                    self.index.insert(k.clone(), slot);
                }
            }
        }
    }

    pub(super) fn append(&mut self, key: &str, value: V) {
        self.index.insert(key.to_string(), self.slots.len());
        self.slots.push(Some((key.to_string(), value)));
    }

    pub(super) fn clear(&mut self) {
        self.slots.clear();
        self.index.clear();
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.slots.iter().flatten().map(|(k, v)| (k.as_str(), v))
    }
}
