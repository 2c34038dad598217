import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import Synchronization

extension Broker {
    /// `/api/v1/ws`: JSON text frames tagged by `type`. Clients may send
    /// `{"type":"subscribe","collections":[...]}` (then only those collections' SyncEvents, plus
    /// peer events), `{"type":"unsubscribe"}` and `{"type":"ping"}` (answered with `pong`).
    /// A client that falls `webSocketBuffer` events behind is closed with a reason.
    func addWebSocket(to router: Router<BasicWebSocketRequestContext>) {
        let hub = hub
        let logger = logger
        router.ws("/api/v1/ws") { _, _ in
            .upgrade()
        } onUpgrade: { inbound, outbound, _ in
            let subscription = hub.subscribe()
            let filter = CollectionFilter()
            defer { _ = hub.release(subscription.id) }
            enum Ended: Sendable { case reader, writer, closedSlowClient, deadline }
            try await withThrowingTaskGroup(of: Ended.self) { group in
                group.addTask {
                    for try await message in inbound.messages(maxSize: 64 * 1024) {
                        guard case .text(let text) = message else { continue }
                        if let reply = filter.handle(text) {
                            try await outbound.write(.text(reply))
                        }
                    }
                    return .reader
                }
                group.addTask {
                    for await event in subscription.events where filter.accepts(event) {
                        try await outbound.write(.text(Self.encode(event.json)))
                    }
                    guard hub.release(subscription.id) else { return .writer }
                    logger.info("WebSocket client too slow; disconnecting it")
                    try await outbound.close(.policyViolation, reason: "too slow: more than \(hub.bufferSize) events unread")
                    return .closedSlowClient
                }
                // The client leaving ends the connection. A slow client was sent a close frame
                // (queued behind what it has not read yet): give it time to read up to it.
                if try await group.next() == .closedSlowClient {
                    group.addTask {
                        try await Task.sleep(for: .seconds(10))
                        return .deadline
                    }
                    _ = try await group.next()
                }
                group.cancelAll()
            }
        }
    }

    static func encode(_ value: JSONValue) -> String {
        String(decoding: value.serialized(), as: UTF8.self)
    }
}

/// One client's subscription: nil = every collection.
final class CollectionFilter: Sendable {
    private let collections = Mutex<Set<String>?>(nil)

    func accepts(_ event: BrokerEvent) -> Bool {
        guard let collection = event.collection else { return true }
        return collections.withLock { $0?.contains(collection) ?? true }
    }

    /// Handles a client message; returns the reply to send, if any.
    func handle(_ text: String) -> String? {
        guard let message = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)).object,
            case .string(let type)? = message["type"]
        else {
            return Broker.encode(.object(["type": .string("Error"), "error": .string("messages are JSON objects with a \"type\"")]))
        }
        switch type {
        case "subscribe":
            guard case .array(let names)? = message["collections"] else {
                return Broker.encode(.object(["type": .string("Error"), "error": .string("subscribe needs \"collections\": [names]")]))
            }
            let set = Set(names.compactMap { if case .string(let name) = $0 { name } else { nil } })
            collections.withLock { $0 = set }
            return Broker.encode(.object(["type": .string("Subscribed"), "collections": .array(set.sorted().map { .string($0) })]))
        case "unsubscribe":
            collections.withLock { $0 = nil }
            return Broker.encode(.object(["type": .string("Subscribed"), "collections": .null]))
        case "ping":
            return Broker.encode(.object(["type": .string("pong")]))
        default:
            return Broker.encode(.object(["type": .string("Error"), "error": .string("unknown message type")]))
        }
    }
}
