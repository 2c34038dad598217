import Synchronization

/// Fans committed changes out to subscribers, each with a bounded buffer.
///
/// A subscriber that falls a whole buffer behind misses changes; it then receives `.overflowed`
/// (as soon as its buffer has room) so it knows to rescan, instead of the store buffering without
/// bound or silently losing events.
final class ChangeFeed: Sendable {
    private struct Subscriber {
        let continuation: AsyncStream<StoreEvent>.Continuation
        var overflowed = false
    }

    private struct State {
        var subscribers: [Int: Subscriber] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    func subscribe(bufferSize: Int) -> AsyncStream<StoreEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self, bufferingPolicy: .bufferingOldest(max(bufferSize, 1)))
        let id = state.withLock { state in
            defer { state.nextID += 1 }
            state.subscribers[state.nextID] = Subscriber(continuation: continuation)
            return state.nextID
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.state.withLock { $0.subscribers.removeValue(forKey: id) }
        }
        return stream
    }

    /// Whether anyone listens (lets writers skip building change lists).
    var hasSubscribers: Bool { state.withLock { !$0.subscribers.isEmpty } }

    /// Delivers committed changes, in order, to every subscriber.
    func publish(_ changes: [DocumentChange]) {
        guard !changes.isEmpty else { return }
        state.withLock { state in
            for id in state.subscribers.keys {
                var subscriber = state.subscribers[id]!
                for change in changes {
                    if subscriber.overflowed {
                        guard case .enqueued = subscriber.continuation.yield(.overflowed) else { continue }
                        subscriber.overflowed = false
                    }
                    if case .dropped = subscriber.continuation.yield(.changed(change)) {
                        subscriber.overflowed = true
                    }
                }
                state.subscribers[id] = subscriber
            }
        }
    }

    /// Ends every subscription.
    func finish() {
        let subscribers = state.withLock { state in
            defer { state.subscribers = [:] }
            return Array(state.subscribers.values)
        }
        for subscriber in subscribers { subscriber.continuation.finish() }
    }
}
