//! The chain of events that led to an event: what its templates can read by agent name.

use std::sync::Arc;

use switchyard_types::{Event, EventId, Payload};

/// One event and, through `parent`, its ancestors. Shared, never copied.
#[derive(Debug)]
pub struct Lineage {
    /// The event.
    pub event_id: EventId,
    /// The agent that emitted it.
    pub agent: Arc<str>,
    /// Its payload.
    pub payload: Payload,
    /// The event that caused it.
    pub parent: Option<Arc<Lineage>>,
}

impl Lineage {
    /// A new link on top of `parent`.
    pub fn child(
        parent: Option<Arc<Lineage>>,
        event_id: EventId,
        agent: Arc<str>,
        payload: Payload,
    ) -> Arc<Lineage> {
        Arc::new(Lineage {
            event_id,
            agent,
            payload,
            parent,
        })
    }

    /// Rebuilds a chain from stored events, nearest first.
    pub fn from_events(events: Vec<Event>) -> Option<Arc<Lineage>> {
        let mut chain: Option<Arc<Lineage>> = None;
        for e in events.into_iter().rev() {
            chain = Some(Lineage::child(chain, e.id, e.agent.into(), e.payload));
        }
        chain
    }

    /// Iterates from this event to the run's first.
    pub fn iter(self: &Arc<Self>) -> impl Iterator<Item = &Lineage> {
        let mut next: Option<&Lineage> = Some(self);
        std::iter::from_fn(move || {
            let cur = next?;
            next = cur.parent.as_deref();
            Some(cur)
        })
    }
}

impl Drop for Lineage {
    // Long chains are dropped iteratively, not recursively.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(link) = next {
            match Arc::try_unwrap(link) {
                Ok(mut l) => next = l.parent.take(),
                Err(_) => break,
            }
        }
    }
}
