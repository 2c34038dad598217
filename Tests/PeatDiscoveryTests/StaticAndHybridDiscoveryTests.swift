import PeatDiscovery
import ServiceLifecycle
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1)))
struct StaticDiscoveryTests {
    @Test func relayOnlyPeersHaveNoAddress() async throws {
        let peers = try StaticDiscovery.parsePeers("b-0@relay, b-1@RELAY, a-1@192.0.2.11:11204")
        #expect(peers == [.relayOnly(nodeID: "b-0"), .relayOnly(nodeID: "b-1"), .init(nodeID: "a-1", host: "192.0.2.11", port: 11204)])
        #expect(peers.map(\.isRelayOnly) == [true, true, false])
        #expect(throws: DiscoveryError.self) { try StaticDiscovery.parsePeers("relay") }
        let discovery = StaticDiscovery(
            peers: [.relayOnly(nodeID: "b-0")],
            resolver: { _ in
                Issue.record("resolved a relay-only peer")
                return nil
            })
        let task = Task { try await discovery.run() }
        var events = discovery.events.makeAsyncIterator()
        guard case .peerFound(let info)? = await events.next() else {
            Issue.record("no peer")
            return
        }
        #expect(info.nodeID == "b-0" && info.addresses.isEmpty)
        task.cancel()
    }

    @Test func parsesPeerListsStrictly() throws {
        let peers = try StaticDiscovery.parsePeers(" gw-a@192.0.2.10:31204 , [fd00::1]:11204,peers.example.org:11205,")
        #expect(
            peers == [
                .init(nodeID: "gw-a", host: "192.0.2.10", port: 31204),
                .init(nodeID: nil, host: "fd00::1", port: 11204),
                .init(nodeID: nil, host: "peers.example.org", port: 11205),
            ])
        #expect(peers[1].reportedNodeID == "[fd00::1]:11204")
        for bad in ["@h:1", "h:0", "h", "[fd00::1]11204", "[nothex]:1", ":1", "h st:1", "::1:11204", "h:65536", "h:+1"] {
            #expect(throws: DiscoveryError.self, "\(bad)") { try StaticDiscovery.parsePeers(bad) }
        }
        #expect(try StaticDiscovery.parsePeers("").isEmpty)
    }

    /// A resolver whose answers the test changes.
    final class ScriptedResolver: Sendable {
        let answers = Mutex<[String: [String]?]>([:])
        func resolve(_ host: String) -> [String]? { answers.withLock { $0[host] ?? nil } }
    }

    @Test func reResolvesNamesAndKeepsLastKnownAddressesOnFailure() async throws {
        let resolver = ScriptedResolver()
        resolver.answers.withLock { $0["peers.example.org"] = ["192.0.2.1"] }
        let discovery = StaticDiscovery(
            peers: [.init(nodeID: "gw", host: "peers.example.org", port: 11204), .init(host: "192.0.2.9", port: 11204)],
            resolveInterval: .milliseconds(20),
            resolver: { resolver.resolve($0) })
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await discovery.run() }
            var events = discovery.events.makeAsyncIterator()
            let first = [await events.next(), await events.next()]
            #expect(first.contains(.peerFound(PeerInfo(nodeID: "gw", addresses: [.init(host: "192.0.2.1", port: 11204)], source: "static"))))
            #expect(first.contains(.peerFound(PeerInfo(nodeID: "192.0.2.9:11204", addresses: [.init(host: "192.0.2.9", port: 11204)], source: "static"))))
            // DNS changes: the peer is updated with the new addresses.
            resolver.answers.withLock { $0["peers.example.org"] = ["192.0.2.2", "192.0.2.3"] }
            let updated = await events.next()
            #expect(
                updated
                    == .peerUpdated(
                        PeerInfo(
                            nodeID: "gw", addresses: [.init(host: "192.0.2.2", port: 11204), .init(host: "192.0.2.3", port: 11204)], source: "static")))
            // DNS fails: nothing is lost, nothing changes (the next event comes only after DNS answers again).
            resolver.answers.withLock { $0["peers.example.org"] = .some(nil) }
            try await Task.sleep(for: .milliseconds(100))
            resolver.answers.withLock { $0["peers.example.org"] = ["192.0.2.4"] }
            let afterOutage = await events.next()
            #expect(afterOutage == .peerUpdated(PeerInfo(nodeID: "gw", addresses: [.init(host: "192.0.2.4", port: 11204)], source: "static")))
            group.cancelAll()
        }
    }
}

struct HybridDiscoveryTests {
    /// A source whose events the test pushes.
    final class ScriptedSource: DiscoveryStrategy {
        let name: String
        let events: AsyncStream<DiscoveryEvent>
        let sink: AsyncStream<DiscoveryEvent>.Continuation

        init(_ name: String) {
            self.name = name
            (events, sink) = AsyncStream.makeStream(of: DiscoveryEvent.self)
        }

        func run() async throws {
            try? await gracefulShutdown()
        }
    }

    static func peer(_ id: String, _ host: String, source: String, relay: String? = nil) -> PeerInfo {
        PeerInfo(nodeID: id, addresses: [.init(host: host, port: 11204)], relayURL: relay, source: source)
    }

    @Test func peerIsLostOnlyWhenEverySourceLostItAndAddressesAreUnioned() async throws {
        let kubernetes = ScriptedSource("kubernetes")
        let manual = ScriptedSource("static")
        let hybrid = HybridDiscovery([kubernetes, manual])
        #expect(hybrid.name == "kubernetes+static")
        await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await hybrid.run() }
            var events = hybrid.events.makeAsyncIterator()

            kubernetes.sink.yield(.peerFound(Self.peer("p0", "10.0.0.1", source: "kubernetes")))
            #expect(await events.next() == .peerFound(PeerInfo(nodeID: "p0", addresses: [.init(host: "10.0.0.1", port: 11204)], source: "kubernetes")))

            manual.sink.yield(.peerFound(Self.peer("p0", "192.0.2.1", source: "static", relay: "https://relay")))
            #expect(
                await events.next()
                    == .peerUpdated(
                        PeerInfo(
                            nodeID: "p0", addresses: [.init(host: "10.0.0.1", port: 11204), .init(host: "192.0.2.1", port: 11204)],
                            relayURL: "https://relay", source: "kubernetes+static")))

            kubernetes.sink.yield(.peerLost(nodeID: "p0"))
            #expect(
                await events.next()
                    == .peerUpdated(
                        PeerInfo(
                            nodeID: "p0", addresses: [.init(host: "192.0.2.1", port: 11204)], relayURL: "https://relay", source: "static")))

            manual.sink.yield(.peerLost(nodeID: "p0"))
            #expect(await events.next() == .peerLost(nodeID: "p0"))

            // A source losing a peer it never reported changes nothing.
            manual.sink.yield(.peerLost(nodeID: "unknown"))
            kubernetes.sink.yield(.peerFound(Self.peer("p1", "10.0.0.2", source: "kubernetes")))
            #expect(await events.next() == .peerFound(PeerInfo(nodeID: "p1", addresses: [.init(host: "10.0.0.2", port: 11204)], source: "kubernetes")))
            group.cancelAll()
        }
    }
}

struct PeerSnapshotDifferTests {
    @Test func reportsFoundUpdatedAndLostInNodeOrder() {
        var differ = PeerSnapshotDiffer()
        let a = PeerInfo(nodeID: "a", addresses: [.init(host: "1.1.1.1", port: 1)], source: "s")
        let b = PeerInfo(nodeID: "b", addresses: [.init(host: "2.2.2.2", port: 1)], source: "s")
        #expect(differ.update(to: [b, a]) == [.peerFound(a), .peerFound(b)])
        #expect(differ.update(to: [a, b]).isEmpty)
        var moved = b
        moved.addresses = [.init(host: "3.3.3.3", port: 1)]
        #expect(differ.update(to: [moved]) == [.peerUpdated(moved), .peerLost(nodeID: "a")])
    }
}
