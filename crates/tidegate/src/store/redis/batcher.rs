//! The one batcher of every Redis call that many callers make at once (the limiter's
//! decisions, the tracker's events): concurrent requests share one script call per
//! hash slot, so the per-call cost of `EVALSHA` is paid once for many of them.
//!
//! When no call is under way it never waits to fill a batch: it takes the first waiting
//! request and whatever else is already queued (up to `max`), so at low load every batch
//! holds one request and adds no latency. At most `in_flight` calls run at once
//! (pipelined over the multiplexed connection); while they run, new requests queue up,
//! and the next call carries all of them. The window adapts: while a call is under way,
//! another one leaves only once it carries a quarter of `max`, or when a call ends
//! (whichever comes first), so a request waits at most one call's time for company, and
//! every call but the first of a busy period pays its fixed cost for many requests. Load
//! therefore turns into larger batches, not more calls. A request whose caller gave up
//! (dropped its answer) before it was sent is dropped unsent.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

/// How a batch of requests becomes one call: what a user of the batcher provides.
pub(crate) trait BatchCall: Send + Sync + 'static {
    /// One caller's request.
    type Request: Send + 'static;
    /// One caller's answer.
    type Answer: Send + 'static;
    /// What requests sharing a call must have in common (a hash slot on a cluster).
    type Group: std::hash::Hash + Eq + Send;

    /// The group of `request`: only requests of one group share a call.
    fn group(&self, request: &Self::Request) -> Self::Group;

    /// Sends `requests` (all of one group) in one call: one answer per request, in order.
    fn call(&self, requests: Vec<&Self::Request>)
    -> impl Future<Output = Vec<Self::Answer>> + Send;
}

/// A request waiting for the batcher, and where its answer goes.
pub(crate) struct Queued<C: BatchCall> {
    /// What to send.
    pub(crate) request: C::Request,
    /// Where the answer goes; a closed one means the caller gave up.
    pub(crate) reply: oneshot::Sender<C::Answer>,
}

/// Calls made by a batcher and the requests they carried.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) calls: AtomicU64,
    pub(crate) requests: AtomicU64,
}

/// Starts the batcher task for `call`; requests sent to the returned channel are
/// answered on their oneshot. The task ends when every sender is dropped.
pub(crate) fn spawn<C: BatchCall>(
    call: Arc<C>,
    max: usize,
    in_flight: usize,
    counters: Arc<Counters>,
) -> mpsc::Sender<Queued<C>> {
    let (tx, mut rx) = mpsc::channel::<Queued<C>>(65_536);
    let in_flight = in_flight.max(1);
    let calls = Arc::new(Semaphore::new(in_flight));
    let max = max.max(1);
    // Requests a call must carry to leave while another call is under way.
    let fill = (max / 4).max(1);
    // Told whenever a call ends.
    let ended = Arc::new(Notify::new());
    tokio::spawn(async move {
        let mut waiting = Vec::with_capacity(max);
        loop {
            let Ok(permit) = Arc::clone(&calls).acquire_owned().await else {
                return;
            };
            if rx.recv_many(&mut waiting, max).await == 0 {
                return;
            }
            // Another call is under way (this round holds one permit): wait for company
            // or for one call to end.
            while waiting.len() < fill && calls.available_permits() + 1 < in_flight {
                // Created before the check, so an end between the two is not missed.
                let notified = ended.notified();
                if calls.available_permits() + 1 >= in_flight {
                    break;
                }
                let room = max - waiting.len();
                tokio::select! {
                    got = rx.recv_many(&mut waiting, room) => {
                        if got == 0 {
                            break;
                        }
                    }
                    () = notified => break,
                }
            }
            // Callers that gave up (timed out) are not served behind their back.
            waiting.retain(|q| !q.reply.is_closed());
            if waiting.is_empty() {
                continue;
            }
            // One permit per round; the groups of a round (one per hash slot) share it.
            let permit = Arc::new(permit);
            let first = call.group(&waiting[0].request);
            let groups: Vec<Vec<Queued<C>>> =
                if waiting[1..].iter().all(|q| call.group(&q.request) == first) {
                    // The usual round (one node, or one slot): no map.
                    vec![std::mem::replace(&mut waiting, Vec::with_capacity(max))]
                } else {
                    let mut groups: HashMap<C::Group, Vec<Queued<C>>> = HashMap::new();
                    for q in waiting.drain(..) {
                        groups.entry(call.group(&q.request)).or_default().push(q);
                    }
                    groups.into_values().collect()
                };
            for group in groups {
                counters.calls.fetch_add(1, Ordering::Relaxed);
                counters
                    .requests
                    .fetch_add(group.len() as u64, Ordering::Relaxed);
                let (call, permit, ended) =
                    (Arc::clone(&call), Arc::clone(&permit), Arc::clone(&ended));
                tokio::spawn(async move {
                    let answers = call.call(group.iter().map(|q| &q.request).collect()).await;
                    drop(permit);
                    ended.notify_waiters();
                    for (q, answer) in group.into_iter().zip(answers) {
                        let _ = q.reply.send(answer);
                    }
                });
            }
        }
    });
    tx
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use tokio::sync::Notify;

    use super::*;

    /// A call that records the batches it gets and holds each until released.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<u32>>>,
        release: Notify,
        running: AtomicUsize,
        most_running: AtomicUsize,
    }

    impl BatchCall for Recorder {
        type Request = u32;
        type Answer = u32;
        type Group = bool;

        fn group(&self, request: &u32) -> bool {
            request.is_multiple_of(2)
        }

        async fn call(&self, requests: Vec<&u32>) -> Vec<u32> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(now, Ordering::SeqCst);
            self.batches
                .lock()
                .unwrap()
                .push(requests.iter().map(|r| **r).collect());
            self.release.notified().await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            requests.iter().map(|r| **r * 10).collect()
        }
    }

    async fn send(tx: &mpsc::Sender<Queued<Recorder>>, n: u32) -> oneshot::Receiver<u32> {
        let (reply, answer) = oneshot::channel();
        tx.send(Queued { request: n, reply }).await.ok().unwrap();
        answer
    }

    async fn until(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("timed out");
    }

    #[tokio::test]
    async fn requests_queued_behind_a_call_share_the_next_one_and_groups_never_mix() {
        let call = Arc::new(Recorder::default());
        let tx = spawn(Arc::clone(&call), 64, 1, Arc::default());
        let first = send(&tx, 2).await;
        until(|| call.batches.lock().unwrap().len() == 1).await;
        let mut later = Vec::new();
        for n in [4, 6, 8, 3] {
            later.push(send(&tx, n).await);
        }
        call.release.notify_one();
        assert_eq!(first.await.unwrap(), 20);
        // The next round takes all four; the even and the odd one go in separate calls.
        until(|| call.batches.lock().unwrap().len() == 3).await;
        call.release.notify_one();
        call.release.notify_one();
        let answers: Vec<u32> = futures_collect(later).await;
        assert_eq!(answers, vec![40, 60, 80, 30]);
        let mut batches = call.batches.lock().unwrap().clone();
        batches[1..].sort();
        assert_eq!(batches, vec![vec![2], vec![3], vec![4, 6, 8]]);
    }

    #[tokio::test]
    async fn a_request_whose_caller_gave_up_is_never_sent() {
        let call = Arc::new(Recorder::default());
        let tx = spawn(Arc::clone(&call), 64, 1, Arc::default());
        let first = send(&tx, 2).await;
        until(|| call.batches.lock().unwrap().len() == 1).await;
        drop(send(&tx, 4).await); // the caller gives up while the first call runs
        let kept = send(&tx, 6).await;
        call.release.notify_one();
        first.await.unwrap();
        until(|| call.batches.lock().unwrap().len() == 2).await;
        call.release.notify_one();
        assert_eq!(kept.await.unwrap(), 60);
        assert_eq!(call.batches.lock().unwrap()[1], vec![6]);
    }

    #[tokio::test]
    async fn while_a_call_runs_the_next_waits_for_a_quarter_of_max_or_for_the_call_to_end() {
        let call = Arc::new(Recorder::default());
        // max 8: a second call leaves with 2 requests, or alone once the first ends.
        let tx = spawn(Arc::clone(&call), 8, 4, Arc::default());
        let first = send(&tx, 2).await;
        until(|| call.batches.lock().unwrap().len() == 1).await;
        let second = send(&tx, 4).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            call.batches.lock().unwrap().len(),
            1,
            "a lone request waits"
        );
        let third = send(&tx, 6).await;
        until(|| call.batches.lock().unwrap().len() == 2).await;
        assert_eq!(call.batches.lock().unwrap()[1], vec![4, 6]);
        // Two calls run; a lone request leaves when one of them ends.
        let fourth = send(&tx, 8).await;
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(call.batches.lock().unwrap().len(), 2);
        call.release.notify_one();
        until(|| call.batches.lock().unwrap().len() == 3).await;
        assert_eq!(call.batches.lock().unwrap()[2], vec![8]);
        call.release.notify_one();
        call.release.notify_one();
        let answers = futures_collect(vec![first, second, third, fourth]).await;
        assert_eq!(answers, vec![20, 40, 60, 80]);
    }

    #[tokio::test]
    async fn at_most_in_flight_calls_run_at_once() {
        let call = Arc::new(Recorder::default());
        let tx = spawn(Arc::clone(&call), 1, 2, Arc::default());
        let mut answers = Vec::new();
        for n in 0..6 {
            answers.push(send(&tx, n * 2).await);
        }
        until(|| call.running.load(Ordering::SeqCst) == 2).await;
        for _ in 0..6 {
            until(|| call.running.load(Ordering::SeqCst) > 0).await;
            call.release.notify_one();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        futures_collect(answers).await;
        assert_eq!(call.most_running.load(Ordering::SeqCst), 2);
    }

    async fn futures_collect(answers: Vec<oneshot::Receiver<u32>>) -> Vec<u32> {
        let mut out = Vec::new();
        for a in answers {
            out.push(a.await.unwrap());
        }
        out
    }
}
