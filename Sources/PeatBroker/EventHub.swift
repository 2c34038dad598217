import Synchronization

/// Fans the state's events out to WebSocket clients, each with a bounded queue.
///
/// A client whose queue is full is marked slow and disconnected with a close reason instead of
/// the broker buffering without bound.
final class EventHub: Sendable {
    struct Subscription: Sendable {
        let events: AsyncStream<BrokerEvent>
        let id: Int
    }

    /// Subscribers by ID, and the IDs of those that fell behind (until their handler releases them).
    private let clients = Mutex<(next: Int, all: [Int: AsyncStream<BrokerEvent>.Continuation], slow: Set<Int>)>((0, [:], []))
    let bufferSize: Int

    init(bufferSize: Int) {
        self.bufferSize = max(bufferSize, 1)
    }

    func subscribe() -> Subscription {
        let (stream, continuation) = AsyncStream.makeStream(of: BrokerEvent.self, bufferingPolicy: .bufferingOldest(bufferSize))
        let id = clients.withLock { clients in
            defer { clients.next += 1 }
            clients.all[clients.next] = continuation
            return clients.next
        }
        continuation.onTermination = { [weak self] _ in
            _ = self?.clients.withLock { $0.all.removeValue(forKey: id) }
        }
        return Subscription(events: stream, id: id)
    }

    /// Whether the client fell behind and must be disconnected; forgets the client.
    func release(_ id: Int) -> Bool {
        clients.withLock { $0.slow.remove(id) != nil }
    }

    func publish(_ event: BrokerEvent) {
        let overflowed: [AsyncStream<BrokerEvent>.Continuation] = clients.withLock { clients in
            var overflowed: [AsyncStream<BrokerEvent>.Continuation] = []
            for (id, continuation) in clients.all where !clients.slow.contains(id) {
                if case .dropped = continuation.yield(event) {
                    clients.slow.insert(id)
                    overflowed.append(continuation)
                }
            }
            return overflowed
        }
        // Ending the stream wakes the client's writer, which sees it is slow and closes.
        for continuation in overflowed { continuation.finish() }
    }

    var clientCount: Int { clients.withLock { $0.all.count } }

    func finish() {
        let all = clients.withLock { clients in
            defer { clients.all = [:] }
            return Array(clients.all.values)
        }
        for continuation in all { continuation.finish() }
    }
}
