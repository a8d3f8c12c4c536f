//! One byte budget for every webhook body being read before it is verified, across all
//! connections: a flood of stalled, nearly complete bodies holds at most
//! `server.unverified_body_budget_bytes` of memory; past it, new bytes are refused with 503.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget, shared by every request (cheap to clone).
#[derive(Clone, Debug)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
}

/// Bytes of the budget one body holds; given back when it is dropped (the request is done).
#[derive(Debug, Default)]
pub struct HeldBytes(Option<OwnedSemaphorePermit>);

impl BodyBudget {
    pub fn new(total_bytes: usize) -> BodyBudget {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(total_bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Takes `n` more bytes for `held`, at once or not at all (never waits: a waiting reader
    /// would hold its connection and buffer all the same).
    pub fn take(&self, held: &mut HeldBytes, n: usize) -> bool {
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                match &mut held.0 {
                    Some(p) => p.merge(permit),
                    None => held.0 = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }

    /// Bytes not held by any body now.
    pub fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_held_until_the_body_is_dropped_and_refused_past_the_budget() {
        let budget = BodyBudget::new(100);
        let mut a = HeldBytes::default();
        assert!(budget.take(&mut a, 60));
        assert!(budget.take(&mut a, 30));
        let mut b = HeldBytes::default();
        assert!(!budget.take(&mut b, 20), "only 10 bytes left");
        assert!(budget.take(&mut b, 10));
        assert_eq!(budget.available(), 0);
        drop(a);
        assert_eq!(budget.available(), 90);
    }
}
