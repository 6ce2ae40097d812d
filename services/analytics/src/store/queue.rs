//! Batches waiting for the next write. Whichever write runs next stores every batch
//! waiting then, in one transaction with one commit, and answers each of them (a group
//! commit): under load, concurrent deliveries share the cost of a commit instead of
//! queueing for one each.

use crate::model::{Fact, Ingested};
use kit::db::DbError;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Where a batch's outcome goes.
pub type Answer = oneshot::Sender<Result<Ingested, DbError>>;

#[derive(Debug, Default)]
pub struct Queue {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next: u64,
    waiting: Vec<(u64, Vec<Fact>, Answer)>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a batch: its ticket, and where its outcome will arrive.
    pub fn push(&self, facts: Vec<Fact>) -> (u64, oneshot::Receiver<Result<Ingested, DbError>>) {
        let (answer, outcome) = oneshot::channel();
        let mut inner = self.lock();
        let ticket = inner.next;
        inner.next += 1;
        inner.waiting.push((ticket, facts, answer));
        (ticket, outcome)
    }

    /// Every batch waiting, in the order they came, with their answers kept in `answers`
    /// (where the write's settlement finds them, whatever became of the write).
    pub fn take_all(&self, answers: &Answers) -> Vec<Vec<Fact>> {
        let waiting = std::mem::take(&mut self.lock().waiting);
        let mut kept = answers.lock();
        waiting
            .into_iter()
            .map(|(_, facts, answer)| {
                kept.push(answer);
                facts
            })
            .collect()
    }

    /// Takes the batch of `ticket` back if no write has taken it (its write never ran).
    pub fn withdraw(&self, ticket: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.waiting.len();
        inner.waiting.retain(|(t, _, _)| *t != ticket);
        inner.waiting.len() < before
    }
}

/// The answers of the batches one write took, in order.
#[derive(Debug, Default, Clone)]
pub struct Answers(Arc<Mutex<Vec<Answer>>>);

impl Answers {
    fn lock(&self) -> MutexGuard<'_, Vec<Answer>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Answers each batch with its own outcome, or all with the write's failure.
    pub fn answer(&self, outcome: Result<&[Ingested], &DbError>) {
        let answers = std::mem::take(&mut *self.lock());
        match outcome {
            Ok(done) => {
                for (answer, done) in answers.into_iter().zip(done) {
                    // A caller that stopped waiting needs no answer.
                    let _ = answer.send(Ok(*done));
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.echo()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_batch_taken_is_answered_with_its_own_outcome() {
        let queue = Queue::default();
        let (first, a) = queue.push(Vec::new());
        let (_, b) = queue.push(Vec::new());
        let answers = Answers::default();
        assert_eq!(queue.take_all(&answers).len(), 2);
        assert!(!queue.withdraw(first), "taken by the write");
        let (late, _c) = queue.push(Vec::new());
        let done = [Ingested { accepted: 1, ..Ingested::default() }, Ingested { duplicates: 2, ..Ingested::default() }];
        answers.answer(Ok(&done));
        assert_eq!(a.await.unwrap().unwrap().accepted, 1);
        assert_eq!(b.await.unwrap().unwrap().duplicates, 2);
        assert!(queue.withdraw(late), "never taken: its caller takes it back");
    }

    #[tokio::test]
    async fn a_failed_write_fails_every_batch_it_took() {
        let queue = Queue::default();
        let outcomes = [queue.push(Vec::new()).1, queue.push(Vec::new()).1];
        let answers = Answers::default();
        queue.take_all(&answers);
        answers.answer(Err(&DbError::Io(std::io::Error::from_raw_os_error(28))));
        for outcome in outcomes {
            assert!(outcome.await.unwrap().unwrap_err().is_disk_full());
        }
    }
}
