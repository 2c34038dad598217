import Foundation
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWSTesting
import PeatBroker
import Testing

/// `/api/v1/ws` against a live server.
@Suite(.timeLimit(.minutes(1)))
struct BrokerWebSocketTests {
    static func withLiveBroker(
        _ state: FakeBrokerState, buffer: Int = 256,
        _ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        var configuration = Broker.Configuration(host: "localhost", port: 0)
        configuration.webSocketBuffer = buffer
        try await Broker(state: state, configuration: configuration).makeApplication().test(.live, body)
    }

    static func object(_ message: WebSocketMessage?) -> [String: Any]? {
        guard case .text(let text)? = message else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any]
    }

    @Test func eventsArriveAsTaggedJSONAndSubscriptionsFilter() async throws {
        let state = FakeBrokerState()
        try await Self.withLiveBroker(state) { client in
            try await client.ws("/api/v1/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                // A ping round trip proves the server registered this client.
                try await outbound.write(.text(#"{"type":"ping"}"#))
                #expect(Self.object(try await messages.next())?["type"] as? String == "pong")

                state.eventSink.yield(.peerConnected(peerID: "peat-mesh-1"))
                state.eventSink.yield(.syncEvent(collection: "beacons", documentID: "b1", action: "put", origin: "peat-mesh-1"))
                let connected = Self.object(try await messages.next())
                #expect(connected?["type"] as? String == "PeerConnected" && connected?["peer_id"] as? String == "peat-mesh-1")
                let sync = Self.object(try await messages.next())
                #expect(sync?["type"] as? String == "SyncEvent")
                #expect(sync?["collection"] as? String == "beacons" && sync?["doc_id"] as? String == "b1")
                #expect(sync?["action"] as? String == "put" && sync?["origin"] as? String == "peat-mesh-1")

                try await outbound.write(.text(#"{"type":"subscribe","collections":["tracks"]}"#))
                #expect(Self.object(try await messages.next())?["type"] as? String == "Subscribed")
                state.eventSink.yield(.syncEvent(collection: "beacons", documentID: "b2", action: "put", origin: "local"))
                state.eventSink.yield(.syncEvent(collection: "tracks", documentID: "t1", action: "delete", origin: "local"))
                state.eventSink.yield(.peerDisconnected(peerID: "peat-mesh-1", reason: "idle timeout"))
                let filtered = Self.object(try await messages.next())
                #expect(filtered?["doc_id"] as? String == "t1", "the beacons event is filtered out")
                let disconnected = Self.object(try await messages.next())
                #expect(disconnected?["type"] as? String == "PeerDisconnected" && disconnected?["reason"] as? String == "idle timeout")

                try await outbound.write(.text("not json"))
                #expect(Self.object(try await messages.next())?["type"] as? String == "Error")
            }
        }
    }

    @Test func slowClientIsDisconnectedWithAReason() async throws {
        let state = FakeBrokerState()
        try await Self.withLiveBroker(state, buffer: 4) { client in
            let close = try await client.ws("/api/v1/ws") { inbound, outbound, _ in
                var messages = inbound.messages(maxSize: 1 << 20).makeAsyncIterator()
                try await outbound.write(.text(#"{"type":"ping"}"#))
                _ = try await messages.next()
                // The client stops reading while 64 MiB of events (8 KiB each) arrive: the socket fills, the
                // server's writer stalls, and the client's 4-event queue overflows.
                let bulky = String(repeating: "x", count: 8 * 1024)
                for index in 0..<8_000 {
                    state.eventSink.yield(.syncEvent(collection: "beacons", documentID: "\(index)-\(bulky)", action: "put", origin: "local"))
                }
                // Only start reading once the broker has given up on this client (its metrics
                // show no WebSocket client), so the overflow does not depend on timing.
                var dropped = false
                for _ in 0..<1_000 where !dropped {
                    try await client.execute(uri: "/metrics", method: .get) { response in
                        dropped = String(buffer: response.body).contains("peat_websocket_clients 0.0")
                    }
                    if !dropped { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(dropped)
                while try await messages.next() != nil {}
            }
            #expect(close?.closeCode == .policyViolation)
            #expect(close?.reason?.contains("too slow") == true)
        }
    }
}
