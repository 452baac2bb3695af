//! Gathering concurrent calls into rounds: many tasks each hand in one item and wait
//! for its answer; one drain task takes whatever is waiting (up to a maximum) and
//! handles it as one round, with a bounded number of rounds in flight.
//!
//! Under load a round holds many items, so per-call costs (a JetStream publish, an
//! HTTP request) are paid once per round; when idle a lone item is handled at once,
//! with no timer to wait for. The queue is bounded: when it is full, callers wait.
use std::future::Future;
use std::sync::Arc;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};

/// How items are gathered.
#[derive(Debug, Clone, Copy)]
pub struct GatherPolicy {
    /// Items waiting at most; callers beyond wait for room.
    pub capacity: usize,
    /// Items in one round at most.
    pub round_size: usize,
    /// Rounds handled at once at most.
    pub parallel_rounds: usize,
}

/// The handle callers hand items to; cheap to clone. The drain task ends once every
/// clone is dropped and the rounds in flight finished.
pub struct Gatherer<Item, Answer> {
    queue: mpsc::Sender<(Item, oneshot::Sender<Answer>)>,
}

impl<Item, Answer> Clone for Gatherer<Item, Answer> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<Item: Send + 'static, Answer: Send + 'static> Gatherer<Item, Answer> {
    /// Starts the drain task. `round` receives the items of a round and must answer
    /// each, in the order given.
    pub fn start<Round, Handled>(
        policy: GatherPolicy,
        round: Round,
    ) -> (Self, tokio::task::JoinHandle<()>)
    where
        Round: Fn(Vec<Item>) -> Handled + Send + Sync + 'static,
        Handled: Future<Output = Vec<Answer>> + Send + 'static,
    {
        let (queue, receiver) = mpsc::channel(policy.capacity.max(1));
        let drain = tokio::spawn(drain(receiver, policy, round));
        (Self { queue }, drain)
    }

    /// Hands in `item` and waits for its answer; `None` once the drain task is gone
    /// (or its round answered fewer items than it was given).
    pub async fn call(&self, item: Item) -> Option<Answer> {
        let (reply, answer) = oneshot::channel();
        self.queue.send((item, reply)).await.ok()?;
        answer.await.ok()
    }
}

async fn drain<Item, Answer, Round, Handled>(
    mut receiver: mpsc::Receiver<(Item, oneshot::Sender<Answer>)>,
    policy: GatherPolicy,
    round: Round,
) where
    Round: Fn(Vec<Item>) -> Handled,
    Handled: Future<Output = Vec<Answer>>,
{
    let round_size = policy.round_size.max(1);
    let parallel_rounds = policy.parallel_rounds.max(1);
    let round = Arc::new(round);
    let mut running = FuturesUnordered::new();
    loop {
        if running.len() >= parallel_rounds {
            running.next().await;
            continue;
        }
        let mut gathered = Vec::with_capacity(round_size);
        tokio::select! {
            // Cancel-safe: when the other branch wins, nothing was taken.
            received = receiver.recv_many(&mut gathered, round_size) => {
                if received == 0 {
                    break;
                }
                let (items, replies): (Vec<Item>, Vec<oneshot::Sender<Answer>>) =
                    gathered.into_iter().unzip();
                let round = Arc::clone(&round);
                running.push(async move {
                    let answers = round(items).await;
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        // A caller that went away needs no answer.
                        let _ = reply.send(answer);
                    }
                });
            }
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn waiting_calls_share_a_round_and_each_gets_its_own_answer() {
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&rounds);
        let (gatherer, drain) = Gatherer::start(
            GatherPolicy {
                capacity: 64,
                round_size: 8,
                parallel_rounds: 1,
            },
            move |items: Vec<u32>| {
                seen.lock().unwrap().push(items.len());
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    items.into_iter().map(|item| item * 10).collect()
                }
            },
        );
        let calls = (0..20).map(|item| {
            let gatherer = gatherer.clone();
            async move { (item, gatherer.call(item).await) }
        });
        let answers = futures::future::join_all(calls).await;
        for (item, answer) in answers {
            assert_eq!(answer, Some(item * 10));
        }
        let rounds = rounds.lock().unwrap().clone();
        assert_eq!(rounds.iter().sum::<usize>(), 20);
        assert!(rounds.iter().all(|size| *size <= 8), "{rounds:?}");
        assert!(rounds.len() < 20, "calls were not gathered: {rounds:?}");
        drop(gatherer);
        drain.await.unwrap();
    }

    #[tokio::test]
    async fn a_round_that_answers_too_few_leaves_the_rest_without_an_answer() {
        let (gatherer, _drain) = Gatherer::start(
            GatherPolicy {
                capacity: 4,
                round_size: 4,
                parallel_rounds: 2,
            },
            |_items: Vec<u32>| async { Vec::<u32>::new() },
        );
        assert_eq!(gatherer.call(1).await, None);
    }
}
