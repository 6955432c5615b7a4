//! Helpers for testing a connector without the bridge: an in-memory [`EventSink`] and a
//! minimal executor.

use std::collections::HashSet;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use async_trait::async_trait;

use crate::{Accepted, ConnectorEvent, EventSink, LegacyEventId, SinkError};

/// An [`EventSink`] that keeps accepted events in memory, in order, and behaves like the core
/// where a connector can see it: it runs [`ConnectorEvent::validate`] and de-duplicates by
/// [`event_id`](ConnectorEvent::event_id).
#[derive(Debug, Default)]
pub struct MemorySink {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    seen: HashSet<LegacyEventId>,
    events: Vec<ConnectorEvent>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// The events accepted so far (duplicates excluded), in submission order.
    pub fn events(&self) -> Vec<ConnectorEvent> {
        self.lock().events.clone()
    }

    /// Removes and returns the events accepted so far. Their ids stay known, so re-submitting
    /// one still counts as a duplicate.
    pub fn take(&self) -> Vec<ConnectorEvent> {
        std::mem::take(&mut self.lock().events)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl EventSink for MemorySink {
    async fn submit(&self, event: ConnectorEvent) -> Result<Accepted, SinkError> {
        event.validate()?;
        let mut state = self.lock();
        if !state.seen.insert(event.event_id.clone()) {
            return Ok(Accepted::DUPLICATE);
        }
        state.events.push(event);
        Ok(Accepted::NEW)
    }
}

/// Runs `future` to completion on the current thread.
///
/// Enough for connector code that does not need a runtime's reactor or timers (for those, use the
/// runtime's own test support, e.g. `#[tokio::test]`).
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(output) => return output,
            Poll::Pending => thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventKind, MessageContent};

    #[test]
    fn memory_sink_validates_and_deduplicates() {
        let sink = MemorySink::new();
        let event = ConnectorEvent::new(
            "e1",
            "room",
            "alice",
            EventKind::Message {
                message_id: "m1".into(),
                content: MessageContent::text("hi"),
                reply_to: None,
                expires: None,
            },
        );
        assert_eq!(block_on(sink.submit(event.clone())), Ok(Accepted::NEW));
        assert_eq!(
            block_on(sink.submit(event.clone())),
            Ok(Accepted::DUPLICATE)
        );
        assert_eq!(sink.events(), vec![event.clone()]);
        assert_eq!(sink.take().len(), 1);
        assert_eq!(block_on(sink.submit(event)), Ok(Accepted::DUPLICATE));
        assert!(sink.events().is_empty());

        let invalid = ConnectorEvent::new(
            "e2",
            "room",
            "alice",
            EventKind::RoomRenamed {
                name: String::new(),
            },
        );
        assert!(matches!(
            block_on(sink.submit(invalid)),
            Err(SinkError::Invalid { .. })
        ));
    }

    #[test]
    fn block_on_waits_for_a_wake_from_another_thread() {
        struct Flag(Arc<Mutex<(bool, Option<Waker>)>>);
        impl Future for Flag {
            type Output = ();
            fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                let mut s = self.0.lock().unwrap();
                if s.0 {
                    Poll::Ready(())
                } else {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
        let shared = Arc::new(Mutex::new((false, None::<Waker>)));
        let other = shared.clone();
        let t = thread::spawn(move || {
            loop {
                let mut s = other.lock().unwrap();
                if let Some(w) = s.1.take() {
                    s.0 = true;
                    w.wake();
                    return;
                }
                drop(s);
                thread::yield_now();
            }
        });
        block_on(Flag(shared));
        t.join().unwrap();
    }
}
