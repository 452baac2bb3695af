//! Gathering concurrent calls into rounds: many tasks each hand in one item and wait
//! for its answer; one drain task takes whatever is waiting (up to a maximum) and
//! handles it as one round, with a bounded number of rounds in flight.
//!
//! Under load a round holds many items, so per-call costs (a JetStream publish, an
//! HTTP request) are paid once per round; when idle a lone item is handled at once,
//! with no timer to wait for. A gatherer may also space its rounds
//! ([`GatherPolicy::round_interval`]): when a round's cost falls on other processes
//! too (a SEND message is stored, delivered, planned and recorded), fewer, fuller
//! rounds are worth a few milliseconds of waiting. The queue is bounded: when it is
//! full, callers wait.
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How items are gathered.
#[derive(Debug, Clone, Copy)]
pub struct GatherPolicy {
    /// Items waiting at most; callers beyond wait for room.
    pub capacity: usize,
    /// Items in one round at most.
    pub round_size: usize,
    /// Rounds handled at once at most.
    pub parallel_rounds: usize,
    /// The least time between the starts of two rounds, unless the later one is full:
    /// items arriving sooner after a round started wait, gathering more, until the
    /// interval is over or they fill a round. Zero: a round starts whenever there is
    /// room for it. An item arriving after a quiet interval starts a round at once.
    pub round_interval: Duration,
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

    /// Hands in `item` without waiting for its answer: returns once the queue took it
    /// (waiting for room when it is full); false once the drain task is gone.
    pub async fn hand_in(&self, item: Item) -> bool {
        let (reply, _) = oneshot::channel();
        self.queue.send((item, reply)).await.is_ok()
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
    let mut last_start: Option<Instant> = None;
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
                if let Some(started) = last_start {
                    let due = started + policy.round_interval;
                    if gathered.len() < round_size && Instant::now() < due {
                        gather_until(&mut receiver, &mut gathered, round_size, due, &mut running)
                            .await;
                    }
                }
                last_start = Some(Instant::now());
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

/// Adds arriving items to `gathered` until it holds `round_size`, `due` comes or the
/// queue closes, driving the rounds in flight meanwhile (their answers must not wait).
async fn gather_until<Item, Answer, Running>(
    receiver: &mut mpsc::Receiver<(Item, oneshot::Sender<Answer>)>,
    gathered: &mut Vec<(Item, oneshot::Sender<Answer>)>,
    round_size: usize,
    due: Instant,
    running: &mut FuturesUnordered<Running>,
) where
    Running: Future<Output = ()>,
{
    let interval_over = tokio::time::sleep_until(due);
    tokio::pin!(interval_over);
    while gathered.len() < round_size {
        let room = round_size - gathered.len();
        tokio::select! {
            received = receiver.recv_many(gathered, room) => {
                if received == 0 {
                    return;
                }
            }
            () = &mut interval_over => return,
            Some(()) = running.next(), if !running.is_empty() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

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
                round_interval: Duration::ZERO,
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
    async fn items_handed_in_are_handled_without_anyone_waiting_for_their_answers() {
        let handled = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&handled);
        let (gatherer, drain) = Gatherer::start(
            GatherPolicy {
                capacity: 4,
                round_size: 3,
                parallel_rounds: 1,
                round_interval: Duration::ZERO,
            },
            move |items: Vec<u32>| {
                let count = items.len();
                seen.lock().unwrap().extend(items);
                async move { vec![(); count] }
            },
        );
        for item in 0..10 {
            assert!(gatherer.hand_in(item).await);
        }
        drop(gatherer);
        drain.await.unwrap();
        assert_eq!(*handled.lock().unwrap(), (0..10).collect::<Vec<_>>());
    }

    #[tokio::test(start_paused = true)]
    async fn rounds_that_are_not_full_start_at_most_once_per_interval() {
        let interval = Duration::from_millis(100);
        let rounds = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&rounds);
        let (gatherer, _drain) = Gatherer::start(
            GatherPolicy {
                capacity: 64,
                round_size: 4,
                parallel_rounds: 2,
                round_interval: interval,
            },
            move |items: Vec<u32>| {
                seen.lock().unwrap().push((Instant::now(), items.clone()));
                async move { items }
            },
        );
        let started = Instant::now();
        // After a quiet time the first item goes at once, alone.
        assert_eq!(gatherer.call(1).await, Some(1));
        // Three more right after it wait for the interval's end, then share a round.
        let three = futures::future::join_all((2..5).map(|item| gatherer.call(item))).await;
        assert_eq!(three, [Some(2), Some(3), Some(4)]);
        // Six at once: the first four fill a round, which never waits; the two left
        // wait for the interval after it.
        let six = futures::future::join_all((5..11).map(|item| gatherer.call(item))).await;
        assert_eq!(six.len(), 6);
        // After a quiet interval, an item goes at once again.
        tokio::time::sleep(interval * 3).await;
        let quiet = Instant::now();
        assert_eq!(gatherer.call(11).await, Some(11));
        let rounds = rounds.lock().unwrap().clone();
        let at: Vec<Duration> = rounds.iter().map(|(at, _)| *at - started).collect();
        let items: Vec<Vec<u32>> = rounds.into_iter().map(|(_, items)| items).collect();
        assert_eq!(
            items,
            [
                vec![1],
                vec![2, 3, 4],
                vec![5, 6, 7, 8],
                vec![9, 10],
                vec![11]
            ]
        );
        assert_eq!(at[0], Duration::ZERO);
        assert_eq!(at[1], interval, "the second round waited for the interval");
        assert_eq!(at[2], interval, "a full round starts at once");
        assert_eq!(at[3], interval * 2);
        assert_eq!(at[4], quiet - started, "after a quiet interval, at once");
    }

    #[tokio::test]
    async fn a_round_that_answers_too_few_leaves_the_rest_without_an_answer() {
        let (gatherer, _drain) = Gatherer::start(
            GatherPolicy {
                capacity: 4,
                round_size: 4,
                parallel_rounds: 2,
                round_interval: Duration::ZERO,
            },
            |_items: Vec<u32>| async { Vec::<u32>::new() },
        );
        assert_eq!(gatherer.call(1).await, None);
    }
}
